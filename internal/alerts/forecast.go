package alerts

import (
	"context"
	"database/sql"
	"errors"

	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/models"
)

// Forecast predicts when the customer's available credit runs out at its
// burn rate over the trailing window (the caller has read the customer, so
// may see it). It reads two ranges of one index: the customer's first usage,
// and its usage within the window.
func (s *Service) Forecast(ctx context.Context, c *models.Customer) (*rules.Forecast, error) {
	db := s.db.WithContext(ctx)
	now := db.NowFunc()
	var u rules.Usage
	var first sql.NullTime
	err := db.Raw("SELECT occurred_at FROM usage_events WHERE customer_id = ? ORDER BY occurred_at LIMIT 1", c.ID).Row().Scan(&first)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return &rules.Forecast{}, nil
	case err != nil:
		return nil, err
	}
	u.First = first.Time
	var sum int64
	if err := db.Raw("SELECT COALESCE(SUM(amount), 0) FROM usage_events WHERE customer_id = ? AND occurred_at >= ? AND occurred_at <= ?",
		c.ID, now.Add(-rules.DefaultWindow), now).Row().Scan(&sum); err != nil {
		return nil, err
	}
	u.InWindow = money.Amount(sum)
	f := rules.Predict(u, c.Available, now, rules.DefaultWindow)
	return &f, nil
}
