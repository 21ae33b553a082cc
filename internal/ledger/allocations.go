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
	p, err := auth.FromContext(ctx)
	if err != nil {
		return none, err
	}
	if err := p.Require(auth.RoleAdmin, auth.RolePartner); err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := l.db.WithContext(ctx).Model(&models.CreditAllocation{})
	if p.Role == auth.RolePartner {
		q = q.Where("partner_id = ?", p.PartnerID)
	}
	q = applyFilter(q, f)
	var total int64
	if err := q.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return none, err
	}
	var after time.Time
	if req.After != nil {
		if after, err = time.Parse(time.RFC3339Nano, req.After.Value); err != nil {
			return none, errs.E(errs.BadUserInput, "after is not a cursor of this listing")
		}
	}
	var rows []*models.CreditAllocation
	q = database.Seek(q, "created_at", true, req.After != nil, after.UTC(), req.AfterID())
	if err := q.Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	return page.Build(rows, req, total, func(a *models.CreditAllocation) page.Cursor {
		return page.Cursor{Value: a.CreatedAt.UTC().Format(time.RFC3339Nano), ID: a.ID}
	}), nil
}

func applyFilter(q *gorm.DB, f AllocationFilter) *gorm.DB {
	if f.CustomerID != nil {
		q = q.Where("customer_id = ?", *f.CustomerID)
	}
	if f.Kind != nil {
		q = q.Where("kind = ?", *f.Kind)
	}
	return database.CreatedBetween(q, f.From, f.To)
}
