package ledger

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// AllocationFilter narrows a listing of allocation records. Zero fields do not
// filter.
type AllocationFilter struct {
	CustomerID *uint
	Kind       *credit.Kind
	From       *time.Time // inclusive
	To         *time.Time // exclusive
}

// Allocations lists allocation records newest first: a PARTNER key's own, all of
// them for ADMIN.
func (l *Ledger) Allocations(ctx context.Context, f AllocationFilter, args page.Args) (page.Result[*models.CreditAllocation], error) {
	var none page.Result[*models.CreditAllocation]
	q, req, after, err := l.allocationQuery(ctx, args)
	if err != nil {
		return none, err
	}
	base := q.Session(&gorm.Session{})
	q = applyFilter(base, f)
	total, err := l.count(ctx, req.Count, q, f)
	if err != nil {
		return none, err
	}
	if req.After != nil && f.To != nil && after.Before(*f.To) {
		// Past the cursor, `to` bounds nothing; SQLite reads an index range
		// by one upper bound and took `to`'s, walking down from it to the
		// cursor (page 1,000 of a range: 16 ms instead of 1).
		pageFilter := f
		pageFilter.To = nil
		q = applyFilter(base, pageFilter)
	}
	q = database.ForceIndex(q, "credit_allocations", allocationIndex(ctx, f))
	var rows []*models.CreditAllocation
	q = database.Seek(q, "created_at", true, req.After != nil, after, req.AfterID())
	if err := q.Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	return page.Build(rows, req, total, allocationCursor), nil
}

// AllocationsOfCustomers is Allocations for each of many customers at once, in
// two queries whatever their number: a page of list items each listing their
// own records must not cost a query per item.
func (l *Ledger) AllocationsOfCustomers(ctx context.Context, ids []uint, args page.Args) (map[uint]page.Result[*models.CreditAllocation], error) {
	q, req, after, err := l.allocationQuery(ctx, args)
	if err != nil {
		return nil, err
	}
	return database.PagesPerCustomer(q, ids, req, "created_at", after, allocationCursor,
		func(a *models.CreditAllocation) uint { return a.CustomerID })
}

// allocationQuery starts a listing of the records the caller may see, with
// its paging and the cursor's time.
func (l *Ledger) allocationQuery(ctx context.Context, args page.Args) (*gorm.DB, page.Request, time.Time, error) {
	var after time.Time
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, page.Request{}, after, err
	}
	req, err := args.Parse()
	if err != nil {
		return nil, req, after, err
	}
	if req.After != nil {
		if after, err = time.Parse(time.RFC3339Nano, req.After.Value); err != nil {
			return nil, req, after, errs.E(errs.BadUserInput, "after is not a cursor of this listing")
		}
	}
	q := l.db.WithContext(ctx).Model(&models.CreditAllocation{})
	if p.Role == auth.RolePartner {
		q = q.Where("partner_id = ?", p.PartnerID)
	}
	return q, req, after.UTC(), nil
}

func allocationCursor(a *models.CreditAllocation) page.Cursor {
	return page.Cursor{Value: a.CreatedAt.UTC().Format(time.RFC3339Nano), ID: a.ID}
}

// count is a listing's totalCount, when asked for. A listing of every record
// the caller sees, or of one kind, is counted by the partners' counters (one
// row, or one sum for ADMIN); a PARTNER key's time range by day counts
// (countBetween); any other filter counts its rows (by the optimizer's own
// choice of index).
func (l *Ledger) count(ctx context.Context, asked bool, q *gorm.DB, f AllocationFilter) (int64, error) {
	p, _ := auth.FromContext(ctx)
	if asked && f.CustomerID == nil && (f.From != nil || f.To != nil) && p.Role == auth.RolePartner {
		return l.countBetween(ctx, q, p.PartnerID, f.Kind, f.From, f.To)
	}
	if !asked || f.CustomerID != nil || f.From != nil || f.To != nil {
		return database.CountIf(asked, q)
	}
	counters := l.db.WithContext(ctx).Model(&models.Partner{})
	if p.Role == auth.RolePartner {
		counters = counters.Where("id = ?", p.PartnerID)
	}
	var c struct{ All, Withdrawn int64 }
	err := counters.Select("COALESCE(SUM(allocation_records), 0) AS `all`, COALESCE(SUM(withdraw_records), 0) AS withdrawn").Scan(&c).Error
	switch {
	case f.Kind == nil:
		return c.All, err
	case *f.Kind == credit.KindWithdraw:
		return c.Withdrawn, err
	}
	return c.All - c.Withdrawn, err
}

// allocationIndex names the index that serves a partner's records with the
// filter (none across partners, or for one customer, which the optimizer
// finds by itself).
func allocationIndex(ctx context.Context, f AllocationFilter) string {
	if p, _ := auth.FromContext(ctx); p.Role != auth.RolePartner || f.CustomerID != nil {
		return ""
	}
	if f.Kind != nil {
		return "idx_allocations_partner_kind_created"
	}
	return "idx_allocations_partner_created"
}

func applyFilter(q *gorm.DB, f AllocationFilter) *gorm.DB {
	if f.CustomerID != nil {
		q = database.SQLiteIndex(q, "credit_allocations", "idx_allocations_customer_created").Where("customer_id = ?", *f.CustomerID)
	}
	if f.Kind != nil {
		q = q.Where("kind = ?", *f.Kind)
	}
	return database.CreatedBetween(q, f.From, f.To)
}
