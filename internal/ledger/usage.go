package ledger

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/models"
)

// MaxUsageEvents bounds one recordUsage call.
const MaxUsageEvents = 1000

// UsageEvent is one usage record from the billing feed.
type UsageEvent struct {
	EventID     string
	CustomerID  uint
	Amount      money.Amount
	OccurredAt  *time.Time
	Description *string
}

// UsageResult says what a batch of usage did.
type UsageResult struct {
	Accepted   int
	Duplicates int
	// Alerts are the alerts the batch raised, in the order it raised them.
	Alerts []*models.Alert
}

// RecordUsage adds a batch of usage events to their customers' usage (BILLING
// or ADMIN). The batch is all or nothing: one invalid event refuses it whole. An
// event whose id was recorded before (or earlier in the batch) is counted as a
// duplicate and not applied again.
func (l *Ledger) RecordUsage(ctx context.Context, events []UsageEvent) (*UsageResult, error) {
	p, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.Require(auth.RoleBilling, auth.RoleAdmin); err != nil {
		return nil, err
	}
	if err := validateUsage(events); err != nil {
		return nil, err
	}
	batch := usageBatch{events: events}
	for attempt := 0; ; attempt++ {
		err = database.Transact(ctx, l.db, batch.run)
		// A concurrent batch recorded one of these event ids first: run again,
		// and it counts as a duplicate.
		if !database.IsDuplicate(err) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if len(batch.res.Alerts) > 0 {
		l.alertsRaised()
	}
	return &batch.res, nil
}

func validateUsage(events []UsageEvent) error {
	if len(events) == 0 || len(events) > MaxUsageEvents {
		return errs.E(errs.BadUserInput, "events must hold 1 to %d events", MaxUsageEvents)
	}
	for i := range events {
		e := &events[i]
		if n := len([]rune(e.EventID)); n == 0 || n > 64 || strings.TrimSpace(e.EventID) == "" {
			return errs.E(errs.BadUserInput, "events[%d]: eventId must be 1 to 64 characters", i)
		}
		if e.Amount <= 0 {
			return errs.E(errs.BadUserInput, "events[%d]: amount must be greater than zero", i)
		}
		var err error
		if e.Description, err = input.Optional("description", e.Description, 500); err != nil {
			return errs.E(errs.BadUserInput, "events[%d]: description must be at most 500 characters", i)
		}
	}
	return nil
}

// usageBatch is one recordUsage call in flight.
type usageBatch struct {
	events []UsageEvent
	res    UsageResult
}

func (b *usageBatch) run(tx *gorm.DB) error {
	b.res = UsageResult{}
	seen, err := recordedEventIDs(tx, b.events)
	if err != nil {
		return err
	}
	customers, err := lockCustomers(tx, b.events)
	if err != nil {
		return err
	}
	rows, err := b.apply(customers, seen, tx.NowFunc())
	if err != nil {
		return err
	}
	for _, c := range customers {
		if err := tx.Model(c).Select("used", "available", "usage_basis_points", "status", "updated_at").Updates(c).Error; err != nil {
			return err
		}
	}
	if len(rows) > 0 {
		if err := tx.CreateInBatches(rows, 200).Error; err != nil {
			return err
		}
	}
	return alerts.Insert(tx, b.res.Alerts)
}

// apply adds the events that are not duplicates to their (locked) customers'
// usage, in order, collecting the alerts they raise; it returns the events to
// store.
func (b *usageBatch) apply(customers map[uint]*models.Customer, seen map[string]bool, now time.Time) ([]*models.UsageEvent, error) {
	var rows []*models.UsageEvent
	for _, e := range b.events {
		if seen[e.EventID] {
			b.res.Duplicates++
			continue
		}
		seen[e.EventID] = true
		c := customers[e.CustomerID]
		before := c.Balance()
		if c.Used > math.MaxInt64-e.Amount {
			return nil, errs.E(errs.BadUserInput, "event %q would overflow the usage of customer %d", e.EventID, c.ID)
		}
		c.SetBalance(credit.Balance{Credit: before.Credit, Used: before.Used + e.Amount})
		b.res.Alerts = append(b.res.Alerts, alertsFor(c, before)...)
		occurred := now
		if e.OccurredAt != nil {
			occurred = e.OccurredAt.UTC().Truncate(time.Microsecond)
		}
		rows = append(rows, &models.UsageEvent{
			EventID: e.EventID, PartnerID: c.PartnerID, CustomerID: c.ID,
			Amount: e.Amount, Description: e.Description, OccurredAt: occurred,
		})
	}
	b.res.Accepted = len(rows)
	return rows, nil
}

// recordedEventIDs returns which of the batch's event ids are already recorded.
func recordedEventIDs(tx *gorm.DB, events []UsageEvent) (map[string]bool, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	var found []string
	if err := tx.Model(&models.UsageEvent{}).Where("event_id IN ?", ids).Pluck("event_id", &found).Error; err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(found))
	for _, id := range found {
		seen[id] = true
	}
	return seen, nil
}

// lockCustomers locks the batch's customers in id order (so that concurrent
// batches queue rather than deadlock) and refuses the batch if one is unknown.
func lockCustomers(tx *gorm.DB, events []UsageEvent) (map[uint]*models.Customer, error) {
	var ids []uint
	for _, e := range events {
		ids = append(ids, e.CustomerID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var rows []*models.Customer
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id IN ?", ids).Order("id").Find(&rows).Error
	if err != nil {
		return nil, err
	}
	byID := make(map[uint]*models.Customer, len(rows))
	for _, c := range rows {
		byID[c.ID] = c
	}
	for i, e := range events {
		if byID[e.CustomerID] == nil {
			return nil, errs.E(errs.BadUserInput, "events[%d]: no customer with id %d", i, e.CustomerID)
		}
	}
	return byID, nil
}
