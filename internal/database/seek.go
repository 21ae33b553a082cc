package database

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/page"
)

// Seek orders q by column then id, both ascending or both descending, and when
// after is true keeps only rows that come after (value, id) in that order. With
// column "id" the value is the id itself. column must be a trusted SQL
// expression, never client text.
func Seek(q *gorm.DB, column string, desc bool, after bool, value any, id uint) *gorm.DB {
	if after {
		q = After(q, column, desc, value, id)
	}
	return q.Order(OrderBy(column, desc))
}

// After keeps the rows that come after (value, id) in the order of column
// then id (see Seek).
func After(q *gorm.DB, column string, desc bool, value any, id uint) *gorm.DB {
	cmp := " > "
	if desc {
		cmp = " < "
	}
	if column == "id" {
		return q.Where("id"+cmp+"?", id)
	}
	// The plain bound on column comes first so that the optimizer reads the
	// index from the cursor on: with the OR alone MariaDB scanned a
	// descending listing from its top (page 1,000 read 50,000 rows).
	return q.Where(column+cmp[:2]+"= ? AND ("+column+cmp+"? OR ("+column+" = ? AND id"+cmp+"?))", value, value, value, id)
}

// OrderBy is the ORDER BY expression of column then id, in one direction.
func OrderBy(column string, desc bool) string {
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	if column == "id" {
		return "id" + dir
	}
	return column + dir + ", id" + dir
}

// CreatedBetween keeps the rows created at or after from and before to; a nil
// bound does not filter.
func CreatedBetween(q *gorm.DB, from, to *time.Time) *gorm.DB {
	if from != nil {
		q = q.Where("created_at >= ?", from.UTC())
	}
	if to != nil {
		q = q.Where("created_at < ?", to.UTC())
	}
	return q
}

// ForceIndex makes MySQL read table by the index (no index: q as it is).
// MariaDB, asked for whole rows of one partner, reads them by partner_id alone
// (a "ref" on the index prefix) and walks a descending listing from its top to
// the cursor: 50,000 rows for page 1,000. Told the index, it reads the range
// from the cursor. SQLite chooses well by its statistics and is left alone.
func ForceIndex(q *gorm.DB, table, index string) *gorm.DB {
	if index == "" || !IsMySQL(q) {
		return q
	}
	return q.Table(table + " FORCE INDEX (" + index + ")")
}

// SQLiteIndex makes SQLite read table by the index (INDEXED BY). Its planner
// weighs indexes by the statistics a connection loaded when it opened: a
// connection opened when the table was small kept walking a partner's
// million records in time order to find one customer's ten (600 ms), where
// the customer's index finds them at once. MySQL chooses well by itself.
func SQLiteIndex(q *gorm.DB, table, index string) *gorm.DB {
	if IsMySQL(q) {
		return q
	}
	return q.Table(table + " INDEXED BY " + index)
}

// ForUpdate is what ends a locking read on the store of db: " FOR UPDATE" on
// MySQL, nothing on SQLite (whose transactions here hold the write lock from
// their start).
func ForUpdate(db *gorm.DB) string {
	if IsMySQL(db) {
		return " FOR UPDATE"
	}
	return ""
}

// ForShare ends a read that locks its rows against writers until the end of
// the transaction, but not against other shared readers: " LOCK IN SHARE
// MODE" on MySQL (MariaDB's spelling, which MySQL also takes), nothing on
// SQLite.
func ForShare(db *gorm.DB) string {
	if IsMySQL(db) {
		return " LOCK IN SHARE MODE"
	}
	return ""
}

// Lock is LockByID for a row a client named: a missing one is NOT_FOUND,
// naming what was looked for.
func Lock(tx *gorm.DB, dest any, id uint, what string) error {
	err := LockByID(tx, dest, id)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errs.E(errs.NotFound, "no %s with id %d", what, id)
	}
	return err
}

// LockByID reads the row with the id into dest and locks it until the end of the
// transaction (SELECT … FOR UPDATE on MySQL; SQLite transactions here already hold
// the database's write lock from their start).
func LockByID(tx *gorm.DB, dest any, id uint) error {
	return tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(dest, id).Error
}

// CountIf counts the rows q selects when asked to (0 otherwise), leaving q as
// it is.
func CountIf(asked bool, q *gorm.DB) (int64, error) {
	var n int64
	if !asked {
		return 0, nil
	}
	err := q.Session(&gorm.Session{}).Count(&n).Error
	return n, err
}

// PageByID lists the rows q selects oldest (lowest id) first, one page of
// req, counted when req asks.
func PageByID[T any](q *gorm.DB, req page.Request, id func(T) uint) (page.Result[T], error) {
	total, err := CountIf(req.Count, q)
	if err != nil {
		return page.Result[T]{}, err
	}
	var rows []T
	if err := Seek(q, "id", false, req.After != nil, nil, req.AfterID()).Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return page.Result[T]{}, err
	}
	return page.Build(rows, req, total, func(row T) page.Cursor { return page.Cursor{ID: id(row)} }), nil
}

// PagesPerCustomer lists, for each of many customers at once, the first page
// of the rows q selects, newest first by column (then id), in two statements
// whatever their number: one count per customer and one window query. It is
// for nested lists: a page of customers each listing their own rows must not
// cost a statement per customer. after is the cursor's column value.
func PagesPerCustomer[T any](q *gorm.DB, ids []uint, req page.Request, column string, after any,
	cursor func(T) page.Cursor, customerOf func(T) uint) (map[uint]page.Result[T], error) {
	q = q.Where("customer_id IN ?", ids)
	totals := map[uint]int64{}
	if req.Count {
		var err error
		if totals, err = CountPerGroup(q.Session(&gorm.Session{}), "customer_id"); err != nil {
			return nil, err
		}
	}
	if req.After != nil {
		q = After(q, column, true, after, req.After.ID)
	}
	var rows []T
	if err := FirstPerGroup(q, "customer_id", OrderBy(column, true), req.Limit+1).Find(&rows).Error; err != nil {
		return nil, err
	}
	groups := page.GroupBy(rows, customerOf)
	out := make(map[uint]page.Result[T], len(ids))
	for _, id := range ids {
		out[id] = page.Build(groups[id], req, totals[id], cursor)
	}
	return out, nil
}

// FirstPerGroup keeps, of the rows q selects, the first n of each group in
// the order given (one query, a window function; MySQL 8, MariaDB 10.2 and
// SQLite 3.25 have them). order must be a trusted SQL expression. It returns
// a query on a derived table: add no further conditions on q's columns.
func FirstPerGroup(q *gorm.DB, group, order string, n int) *gorm.DB {
	inner := q.Select("*, ROW_NUMBER() OVER (PARTITION BY " + group + " ORDER BY " + order + ") AS group_row")
	return q.Session(&gorm.Session{NewDB: true}).Table("(?) AS firsts", inner).
		Where("group_row <= ?", n).Order(group + ", group_row")
}

// CountPerGroup counts the rows q selects in each group.
func CountPerGroup(q *gorm.DB, group string) (map[uint]int64, error) {
	var rows []struct {
		Group uint
		N     int64
	}
	if err := q.Select(group + " AS `group`, COUNT(*) AS n").Group(group).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[uint]int64, len(rows))
	for _, r := range rows {
		out[r.Group] = r.N
	}
	return out, nil
}

// ScanTime reads a time an aggregate returned: MySQL gives a time, SQLite the
// text it stored (an aggregate loses the column's declared type).
func ScanTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case time.Time:
		return t.UTC(), nil
	case []byte:
		return parseStoredTime(string(t))
	case string:
		return parseStoredTime(t)
	case nil:
		return time.Time{}, nil
	}
	return time.Time{}, fmt.Errorf("a time was read as %T", v)
}

func parseStoredTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("a stored time %q has no known layout", s)
}
