package reconcile

import (
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

// groups holds the rows of a query ordered by customer_id, read whole, and
// gives them out one customer's at a time. checkHistory reads a chunk of
// customers at a time: its queries run one after the other in the snapshot's
// transaction, where MySQL cannot stream two result sets at once.
type groups struct {
	rows []row
	next int // the first row not yet taken
}

func readGroups(q *gorm.DB) (*groups, error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	g := &groups{}
	for rows.Next() {
		var r row
		if err := q.ScanRows(rows, &r); err != nil {
			return nil, err
		}
		g.rows = append(g.rows, r)
	}
	return g, rows.Err()
}

// take returns the rows of the customer, which must be the lowest customer
// id of the rows left.
func (g *groups) take(customer uint) []row {
	start := g.next
	for g.next < len(g.rows) && g.rows[g.next].CustomerID == customer {
		g.next++
	}
	return g.rows[start:g.next]
}
