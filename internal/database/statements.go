package database

import (
	"database/sql"
	"fmt"
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

// Query runs a query in tx's transaction (if any), with its context: for
// rows a hot path scans by hand.
func Query(tx *gorm.DB, query string, args ...any) (*sql.Rows, error) {
	return tx.Statement.ConnPool.QueryContext(tx.Statement.Context, query, args...)
}

// QueryRow is Query for at most one row (a row locked with ForUpdate): its
// Scan reports sql.ErrNoRows when there is none.
func QueryRow(tx *gorm.DB, query string, args ...any) *sql.Row {
	return tx.Statement.ConnPool.QueryRowContext(tx.Statement.Context, query, args...)
}

// InsertRows inserts n rows into table in one statement; row(i) gives the
// values of row i in the order of columns. The result's LastInsertId is the
// first row's auto-increment id on MySQL, the last row's on SQLite. Mind the
// stores' limits on parameters (MySQL 65,535, SQLite 32,766).
func InsertRows(tx *gorm.DB, table string, columns []string, n int, row func(i int) []any) (sql.Result, error) {
	return Exec(tx, insertRows(table, columns, n), rowArgs(len(columns), n, row)...)
}

// AddRows adds, in one statement, n rows of values to table: a row whose
// key (the first keyed columns, the table's primary key) is new is
// inserted; one that is there gets the values of the other columns added to
// its own. row(i) gives row i's values in the order of columns.
func AddRows(tx *gorm.DB, table string, columns []string, keyed, n int, row func(i int) []any) error {
	upsert, added := " ON CONFLICT ("+strings.Join(columns[:keyed], ", ")+") DO UPDATE SET ", "excluded.%s"
	if IsMySQL(tx) {
		upsert, added = " ON DUPLICATE KEY UPDATE ", "VALUES(%s)"
	}
	add := make([]string, 0, len(columns)-keyed)
	for _, c := range columns[keyed:] {
		add = append(add, c+" = "+c+" + "+fmt.Sprintf(added, c))
	}
	_, err := Exec(tx, insertRows(table, columns, n)+upsert+strings.Join(add, ", "), rowArgs(len(columns), n, row)...)
	return err
}

// insertRows is the statement that inserts n rows of columns into table.
func insertRows(table string, columns []string, n int) string {
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(placeholders)
	}
	return "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES " + b.String()
}

// rowArgs are the values of n rows of width columns, in order.
func rowArgs(width, n int, row func(i int) []any) []any {
	args := make([]any, 0, n*width)
	for i := range n {
		args = append(args, row(i)...)
	}
	return args
}

// InsertedIDs are the ids of the n rows a multi-row INSERT … VALUES
// (InsertRows) wrote, in order. Each store hands one such statement one
// range: SQLite has one writer, and InnoDB reserves the ids of a "simple
// insert" (its row count known before it runs) at once in every
// innodb_autoinc_lock_mode; only INSERT … SELECT and LOAD DATA, never used
// here, may see gaps under mode 2. The range is spaced by MySQL's
// auto_increment_increment, read at Open (replication set-ups raise it).
// MySQL reports the first id of the statement, SQLite the last.
func InsertedIDs(tx *gorm.DB, res sql.Result, n int) ([]uint, error) {
	last, err := res.LastInsertId()
	if err != nil {
		return nil, err
	}
	first, step := uint(last)-uint(n-1), uint(1)
	if IsMySQL(tx) {
		first = uint(last)
		if t, ok := tx.Config.Plugins[traitsName].(*traits); ok {
			step = t.idStep
		}
	}
	ids := make([]uint, n)
	for i := range ids {
		ids[i] = first + uint(i)*step
	}
	return ids, nil
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
