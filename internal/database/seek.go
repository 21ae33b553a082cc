package database

import (
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Seek orders q by column then id, both ascending or both descending, and when
// after is true keeps only rows that come after (value, id) in that order. With
// column "id" the value is the id itself. column must be a trusted SQL
// expression, never client text.
func Seek(q *gorm.DB, column string, desc bool, after bool, value any, id uint) *gorm.DB {
	dir, cmp := " ASC", " > "
	if desc {
		dir, cmp = " DESC", " < "
	}
	if column == "id" {
		if after {
			q = q.Where("id"+cmp+"?", id)
		}
		return q.Order("id" + dir)
	}
	if after {
		q = q.Where("("+column+cmp+"?) OR ("+column+" = ? AND id"+cmp+"?)", value, value, id)
	}
	return q.Order(column + dir).Order("id" + dir)
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

// LockByID reads the row with the id into dest and locks it until the end of the
// transaction (SELECT … FOR UPDATE on MySQL; SQLite transactions here already hold
// the database's write lock from their start).
func LockByID(tx *gorm.DB, dest any, id uint) error {
	return tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(dest, id).Error
}
