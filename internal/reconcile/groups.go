package reconcile

import (
	"database/sql"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/money"
)

// row is a record of any of the replayed tables; columns a table lacks stay zero.
type row struct {
	CustomerID   uint
	ID           uint
	CreatedAt    time.Time
	Amount       money.Amount
	CreditBefore money.Amount
	CreditAfter  money.Amount
	Threshold    int
	Used         money.Amount
	Credit       money.Amount
	// Of alerts.
	Kind          string
	Level         *money.Amount
	RecoveredKind *string
}

// groups streams the rows of a query ordered by customer_id, one customer's
// rows at a time, so that a store of any size is checked in little memory.
type groups struct {
	db   *gorm.DB
	rows *sql.Rows
	next *row // the first row of the next customer, nil at the end
	err  error
}

func newGroups(q *gorm.DB) (*groups, error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, err
	}
	g := &groups{db: q, rows: rows}
	g.advance()
	return g, g.err
}

func (g *groups) advance() {
	g.next = nil
	if g.err != nil || !g.rows.Next() {
		if g.err == nil {
			g.err = g.rows.Err()
		}
		return
	}
	var r row
	if g.err = g.db.ScanRows(g.rows, &r); g.err == nil {
		g.next = &r
	}
}

// take returns the rows of the customer, which must be the lowest remaining
// customer id of every stream.
func (g *groups) take(customer uint) []row {
	var out []row
	for g.next != nil && g.next.CustomerID == customer {
		out = append(out, *g.next)
		g.advance()
	}
	return out
}

func (g *groups) close() { g.rows.Close() }

// nextCustomer returns the lowest customer id that any stream is at.
func nextCustomer(streams ...*groups) (uint, bool) {
	var id uint
	found := false
	for _, s := range streams {
		if s.next != nil && (!found || s.next.CustomerID < id) {
			id, found = s.next.CustomerID, true
		}
	}
	return id, found
}
