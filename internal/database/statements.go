package database

import (
	"database/sql"
	"strings"

	"gorm.io/gorm"
)

// The hot paths write with hand-built statements: GORM's reflection over
// hundreds of rows showed in the profile while the rows were locked.

// Exec runs a statement in tx and returns its result (LastInsertId, or MySQL's
// LAST_INSERT_ID(expr)), with errors given GORM's meaning as GORM gives them
// for its own statements (a duplicate key is gorm.ErrDuplicatedKey).
func Exec(tx *gorm.DB, query string, args ...any) (sql.Result, error) {
	res, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, query, args...)
	if t, ok := tx.Dialector.(gorm.ErrorTranslator); ok && err != nil {
		err = t.Translate(err)
	}
	return res, err
}

// InsertRows inserts n rows into table in one statement; row(i) gives the
// values of row i in the order of columns. The result's LastInsertId is the
// first row's auto-increment id on MySQL, the last row's on SQLite. Mind the
// stores' limits on parameters (MySQL 65,535, SQLite 32,766).
func InsertRows(tx *gorm.DB, table string, columns []string, n int, row func(i int) []any) (sql.Result, error) {
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	var b strings.Builder
	args := make([]any, 0, n*len(columns))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(placeholders)
		args = append(args, row(i)...)
	}
	return Exec(tx, "INSERT INTO "+table+" ("+strings.Join(columns, ", ")+") VALUES "+b.String(), args...)
}

// FirstInsertID is the id of the first row a multi-row insert of n rows
// (InsertRows) wrote: MySQL reports it, SQLite reports the last. Ids after it
// are consecutive on SQLite (one writer) and with MySQL's
// innodb_autoinc_lock_mode 0 or 1, not with 2 (interleaved).
func FirstInsertID(tx *gorm.DB, res sql.Result, n int) (uint, error) {
	last, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if IsMySQL(tx) {
		return uint(last), nil
	}
	return uint(last) - uint(n) + 1, nil
}

// In returns the list "(?, ?, …)" for an IN condition on values, and values
// as the statement's arguments. values must not be empty.
func In[T any](values []T) (string, []any) {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return "(?" + strings.Repeat(", ?", len(values)-1) + ")", args
}
