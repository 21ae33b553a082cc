package alerts

import (
	"context"

	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/models"
)

// Forecast predicts when the customer's available credit runs out at its
// burn rate over the trailing window (the caller has read the customer, so
// may see it). It reads two ranges of one index: the customer's first usage,
// and its usage within the window.
func (s *Service) Forecast(ctx context.Context, c *models.Customer) (*rules.Forecast, error) {
	db := s.db.WithContext(ctx)
	now := db.NowFunc()
	u, err := usageOf(db, c.ID, now, s.opts.ForecastWindow)
	if err != nil {
		return nil, err
	}
	f := rules.Predict(u, c.Available, now, s.opts.ForecastWindow)
	return &f, nil
}
