package alerts

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/failing"
	"github.com/cloudreseller/credit/internal/ledger"
	"github.com/cloudreseller/credit/models"
)

// The depletion forecaster evaluates forecasts apart from the write path: a
// change says which customers it touched (Touched), and the forecaster, a
// moment later, reads their usage for all of them in two statements, and opens
// a transaction only for a customer whose forecast state changes (it crosses
// into its horizon, or out of it), where it decides again on the locked row
// and raises DEPLETION_FORECAST at most once. Every hour (Options.ForecastTick)
// it evaluates every customer with usage in the window, since time alone can
// bring a forecast into view (a customer's history reaching a day).

// Forecaster defaults.
const (
	// DefaultForecastTick is how often every customer with usage is evaluated.
	DefaultForecastTick = time.Hour
	// DefaultForecastGather is how long the forecaster, told of changes,
	// gathers more before evaluating: under load a customer is evaluated
	// once a second, not after every batch.
	DefaultForecastGather = time.Second
)

// forecastBatch bounds the customers evaluated in one pass.
const forecastBatch = 500

// pendingForecasts are the customers to evaluate, with what touched them.
type pendingForecasts struct {
	mu   sync.Mutex
	ids  map[uint]rules.Cause
	wake chan struct{}
}

// Touched queues the customers' forecasts for evaluation (after a change
// committed). Safe to call from any goroutine.
func (s *Service) Touched(cause rules.Cause, customerIDs ...uint) {
	s.forecasts.mu.Lock()
	for _, id := range customerIDs {
		s.forecasts.ids[id] = cause
	}
	s.forecasts.mu.Unlock()
	signal(s.forecasts.wake)
}

func (s *Service) takeTouched() map[uint]rules.Cause {
	s.forecasts.mu.Lock()
	defer s.forecasts.mu.Unlock()
	ids := s.forecasts.ids
	s.forecasts.ids = map[uint]rules.Cause{}
	return ids
}

// forecaster runs until ctx ends.
func (s *Service) forecaster(ctx context.Context) {
	tick := time.NewTicker(s.opts.ForecastTick)
	defer tick.Stop()
	evaluations := failing.New(s.log, "forecasts", "evaluation failed; retrying at the next change or tick", "evaluation works again")
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-s.forecasts.wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.opts.ForecastGather):
			}
			err = s.evaluate(ctx, s.takeTouched())
		case <-tick.C:
			err = s.evaluateRecent(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		evaluations.Note(err)
	}
}

// evaluateRecent evaluates every customer with usage (most are dismissed by
// their balance alone: see evaluateBatch).
func (s *Service) evaluateRecent(ctx context.Context) error {
	var ids []uint
	if err := s.db.WithContext(ctx).Raw("SELECT id FROM customers WHERE used > 0").Scan(&ids).Error; err != nil {
		return err
	}
	all := make(map[uint]rules.Cause, len(ids))
	for _, id := range ids {
		all[id] = rules.CauseForecastTick
	}
	return s.evaluate(ctx, all)
}

// evaluate evaluates the customers' forecasts, a batch at a time.
func (s *Service) evaluate(ctx context.Context, causes map[uint]rules.Cause) error {
	ids := slices.Sorted(maps.Keys(causes))
	for len(ids) > 0 {
		n := min(len(ids), forecastBatch)
		if err := s.evaluateBatch(ctx, ids[:n], causes); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// evaluateBatch reads the customers and their usage without locks, and
// settles those whose forecast state changes. Most customers are dismissed by
// their balance alone: the usage in the window is at most all their usage,
// over at least a day, so at least available ÷ used days are left; when that
// is beyond the horizon, they are outside it whatever their usage.
func (s *Service) evaluateBatch(ctx context.Context, ids []uint, causes map[uint]rules.Cause) error {
	db := s.db.WithContext(ctx)
	now := db.NowFunc()
	var all []*models.Customer
	if err := db.Select("id, partner_id, credit, used, available, alert_forecast_horizon_hours, forecast_state").
		Where("id IN ?", ids).Find(&all).Error; err != nil {
		return err
	}
	inForce, err := outbox.RulesOf(db, all, false)
	if err != nil {
		return err
	}
	var customers []*models.Customer
	var candidates []uint
	for _, c := range all {
		h := inForce[c.ID].HorizonHours
		if surelyOutside(c, h) && c.ForecastState == (rules.ForecastState{HorizonHours: h}).Encode() {
			continue // outside, and known to be
		}
		customers = append(customers, c)
		candidates = append(candidates, c.ID)
	}
	if len(candidates) == 0 {
		return nil
	}
	usage, err := usageOfCustomers(db, candidates, now, s.opts.ForecastWindow)
	if err != nil {
		return err
	}
	raised := false
	for _, c := range customers {
		f := rules.Predict(usage[c.ID], c.Available, now, s.opts.ForecastWindow)
		_, next := rules.DecideForecast(inForce[c.ID].HorizonHours, rules.DecodeForecastState(c.ForecastState), f)
		if next.Encode() == c.ForecastState {
			continue // nothing to raise, nothing to store
		}
		did, err := s.settleForecast(ctx, c.ID, causes[c.ID])
		if err != nil {
			return err
		}
		raised = raised || did
	}
	if raised {
		s.Raised()
	}
	return nil
}

// surelyOutside tells, from the balance alone, that a customer has more than
// horizonHours left at any burn rate its usage allows: available × 24 >
// horizon × used (no usage: no depletion).
func surelyOutside(c *models.Customer, horizonHours int) bool {
	return c.Used == 0 || int64(c.Available)*24 > int64(horizonHours)*int64(c.Used)
}

// settleForecast decides again on the locked customer, stores its forecast
// state and raises DEPLETION_FORECAST when it enters its horizon. Two
// processes settling the same customer take turns on its row: the second finds
// the state stored, and raises nothing.
func (s *Service) settleForecast(ctx context.Context, id uint, cause rules.Cause) (raised bool, err error) {
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		raised = false
		c, err := accounts.LockCustomer(tx, auth.Principal{Role: auth.RoleAdmin}, id)
		if err != nil {
			return err
		}
		now := tx.NowFunc()
		u, err := usageOf(tx, c.ID, now, s.opts.ForecastWindow)
		if err != nil {
			return err
		}
		inForce, err := outbox.RulesFor(tx, []*models.Customer{c})
		if err != nil {
			return err
		}
		f := rules.Predict(u, c.Available, now, s.opts.ForecastWindow)
		raise, next := rules.DecideForecast(inForce[c.ID].HorizonHours, rules.DecodeForecastState(c.ForecastState), f)
		if next.Encode() == c.ForecastState {
			return nil
		}
		if _, err := database.Exec(tx, "UPDATE customers SET forecast_state = ? WHERE id = ?", next.Encode(), c.ID); err != nil {
			return err
		}
		if !raise {
			return nil
		}
		raised = true
		return outbox.Insert(tx, []*models.Alert{forecastAlert(c, cause, f)})
	})
	return raised, err
}

// forecastAlert is the DEPLETION_FORECAST alert of a customer now.
func forecastAlert(c *models.Customer, cause rules.Cause, f rules.Forecast) *models.Alert {
	status := c.Status
	hours := f.BasedOnHours
	return &models.Alert{
		PartnerID: c.PartnerID, CustomerID: c.ID, Kind: rules.DepletionForecast, Cause: cause,
		UsageBasisPoints: c.UsageBasisPoints, Used: c.Used, Credit: c.Credit, Available: c.Available, Status: &status,
		BurnRatePerDay: f.BurnRatePerDay, DepletesAt: f.DepletesAt, DaysLeft: f.DaysLeftHundredths, BasedOnHours: &hours,
	}
}

// usageOf reads what the forecast needs of one customer's usage.
func usageOf(db *gorm.DB, customerID uint, now time.Time, window time.Duration) (rules.Usage, error) {
	usage, err := usageOfCustomers(db, []uint{customerID}, now, window)
	return usage[customerID], err
}

// usageOfCustomers reads what the forecast needs of each customer's usage,
// in two statements: its first usage, and its usage within the window up to
// now (by hour), neither of which reads more events the more a customer has.
func usageOfCustomers(db *gorm.DB, ids []uint, now time.Time, window time.Duration) (map[uint]rules.Usage, error) {
	firsts, err := ledger.FirstUsage(db, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[uint]rules.Usage, len(ids))
	for id, first := range firsts {
		out[id] = rules.Usage{First: first}
	}
	sums, err := ledger.UsageBetween(db, ids, now.Add(-window), now)
	if err != nil {
		return nil, err
	}
	for id, sum := range sums {
		u := out[id]
		u.InWindow = sum
		out[id] = u
	}
	return out, nil
}
