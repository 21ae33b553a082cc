package ledger

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
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
	_, err := auth.Require(ctx, auth.RoleBilling, auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	if err := validateUsage(events, l.db.NowFunc()); err != nil {
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
	if errs.CodeOf(err) == errs.IdempotencyConflict {
		l.stats.conflicts.Add(1)
	}
	if err != nil {
		return nil, err
	}
	l.stats.accepted.Add(uint64(batch.res.Accepted))
	if len(batch.touched) > 0 {
		l.outbox.Touched(rules.CauseUsage, batch.touched...)
	}
	l.stats.duplicates.Add(uint64(batch.res.Duplicates))
	l.stats.raised.Add(uint64(len(batch.res.Alerts)))
	if len(batch.res.Alerts) > 0 {
		// The payload lists the alerts with their ids, which they get once
		// numbered, a moment after the commit.
		if batch.res.Alerts, err = l.outbox.Numbered(ctx, batch.res.Alerts); err != nil {
			return nil, errs.E(errs.ServiceUnavailable,
				"the usage was recorded and its alerts will reach listeners, but their ids could not be read back: send the batch again to see it counted as duplicates")
		}
	}
	return &batch.res, nil
}

// MaxUsageAhead is how far after the server's clock an event may have
// occurred: a feed's clock may run ahead, but an event a day and more in the
// future is a feed's mistake (milliseconds sent as seconds, a year of 9999),
// and would sit in listings and usage by hour where no window reads it.
const MaxUsageAhead = 24 * time.Hour

func validateUsage(events []UsageEvent, now time.Time) error {
	if len(events) == 0 || len(events) > MaxUsageEvents {
		return errs.E(errs.BadUserInput, "events must hold 1 to %d events", MaxUsageEvents)
	}
	for i := range events {
		e := &events[i]
		if _, err := input.Identifier("eventId", e.EventID, 64); err != nil {
			return errs.E(errs.BadUserInput, "events[%d]: eventId must be 1 to 64 characters, not blank", i)
		}
		if e.Amount <= 0 {
			return errs.E(errs.BadUserInput, "events[%d]: amount must be greater than zero", i)
		}
		if e.OccurredAt != nil && e.OccurredAt.After(now.Add(MaxUsageAhead)) {
			return errs.E(errs.BadUserInput, "events[%d]: occurredAt is more than 24 hours ahead of the server's clock", i)
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
	// touched are the customers whose usage the batch changed.
	touched []uint
}

func (b *usageBatch) run(tx *gorm.DB) error {
	b.res, b.touched = UsageResult{}, nil
	seen, err := recordedEvents(tx, b.events)
	if err != nil {
		return err
	}
	customers, inForce, err := lockCustomers(tx, b.events)
	if err != nil {
		return err
	}
	firedBefore := make(map[uint]string, len(customers))
	for id, c := range customers {
		firedBefore[id] = c.AlertFired
	}
	rows, err := b.apply(customers, inForce, seen, tx.NowFunc())
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil // only duplicates: nothing changed
	}
	touched := map[uint]bool{}
	for _, r := range rows {
		if !touched[r.CustomerID] {
			touched[r.CustomerID] = true
			b.touched = append(b.touched, r.CustomerID)
		}
	}
	if err := updateUsage(tx, customers, firedBefore); err != nil {
		return err
	}
	if err := insertEvents(tx, rows); err != nil {
		return err
	}
	if err := addUsageHours(tx, rows); err != nil {
		return err
	}
	return outbox.Insert(tx, b.res.Alerts)
}

// insertEvents writes the batch's events in one statement (1,000 events × 7
// columns stays under both stores' limit on parameters).
func insertEvents(tx *gorm.DB, events []*models.UsageEvent) error {
	now := tx.NowFunc()
	_, err := database.InsertRows(tx, "usage_events",
		[]string{"event_id", "partner_id", "customer_id", "amount", "description", "occurred_at", "created_at"},
		len(events), func(i int) []any {
			e := events[i]
			return []any{e.EventID, e.PartnerID, e.CustomerID, e.Amount, e.Description, e.OccurredAt, now}
		})
	return err
}

// updateUsage writes the (locked) customers' new usage and what follows from
// it in one statement, however many they are. Fired alert levels, which few
// batches change, are written only for the customers whose levels changed
// (each CASE is a search through the batch's ids, row by row).
func updateUsage(tx *gorm.DB, customers map[uint]*models.Customer, firedBefore map[uint]string) error {
	ids := make([]uint, 0, len(customers))
	var firedIDs []uint
	for id, c := range customers {
		ids = append(ids, id)
		if c.AlertFired != firedBefore[id] {
			firedIDs = append(firedIDs, id)
		}
	}
	slices.Sort(ids)
	columns := []struct {
		name  string
		ids   []uint
		value func(c *models.Customer) any
	}{
		{"used", ids, func(c *models.Customer) any { return c.Used }},
		{"available", ids, func(c *models.Customer) any { return c.Available }},
		{"usage_basis_points", ids, func(c *models.Customer) any { return c.UsageBasisPoints }},
		{"status", ids, func(c *models.Customer) any { return string(c.Status) }},
		{"alert_fired", firedIDs, func(c *models.Customer) any { return c.AlertFired }},
	}
	var set strings.Builder
	var args []any
	for _, col := range columns {
		if len(col.ids) == 0 {
			continue
		}
		set.WriteString(col.name + " = CASE id")
		for _, id := range col.ids {
			set.WriteString(" WHEN ? THEN ?")
			args = append(args, id, col.value(customers[id]))
		}
		set.WriteString(" ELSE " + col.name + " END, ")
	}
	args = append(args, tx.NowFunc(), ids)
	return tx.Exec("UPDATE customers SET "+set.String()+"updated_at = ? WHERE id IN ?", args...).Error
}

// apply adds the events that are not duplicates to their (locked) customers'
// usage, in order, collecting the alerts they raise; it returns the events to
// store. seen holds the events recorded before, by id; it gains the batch's.
func (b *usageBatch) apply(customers map[uint]*models.Customer, inForce map[uint]rules.Rules, seen map[string]*models.UsageEvent, now time.Time) ([]*models.UsageEvent, error) {
	var rows []*models.UsageEvent
	for i, e := range b.events {
		if first := seen[e.EventID]; first != nil {
			if !sameUsage(first, e) {
				return nil, errs.E(errs.IdempotencyConflict,
					"events[%d]: eventId %q was already recorded with another customer, amount, time or description", i, e.EventID)
			}
			b.res.Duplicates++
			continue
		}
		c := customers[e.CustomerID]
		before, was := c.Balance(), outbox.StateOf(c)
		if c.Used > math.MaxInt64-e.Amount {
			return nil, errs.E(errs.BadUserInput, "events[%d]: event %q would overflow the usage of customer %d", i, e.EventID, c.ID)
		}
		c.SetBalance(credit.Balance{Credit: before.Credit, Used: before.Used + e.Amount})
		b.res.Alerts = append(b.res.Alerts, outbox.Apply(inForce[c.ID], rules.CauseUsage, c, was)...)
		row := &models.UsageEvent{
			EventID: e.EventID, PartnerID: c.PartnerID, CustomerID: c.ID,
			Amount: e.Amount, Description: e.Description, OccurredAt: occurredAt(e, now),
		}
		seen[e.EventID] = row
		rows = append(rows, row)
	}
	b.res.Accepted = len(rows)
	return rows, nil
}

func occurredAt(e UsageEvent, now time.Time) time.Time {
	if e.OccurredAt == nil {
		return now
	}
	return e.OccurredAt.UTC().Truncate(time.Microsecond)
}

// sameUsage tells whether e, sent again with the id of the recorded event r,
// is the same event: the same customer and amount, and the same time and
// description where e gives them. Anything else reuses the id for another
// event, which must not pass as a duplicate (its usage would never count).
func sameUsage(r *models.UsageEvent, e UsageEvent) bool {
	switch {
	case r.CustomerID != e.CustomerID || r.Amount != e.Amount:
		return false
	case e.OccurredAt != nil && !r.OccurredAt.Equal(occurredAt(e, time.Time{})):
		return false
	case e.Description != nil && (r.Description == nil || *r.Description != *e.Description):
		return false
	}
	return true
}

// recordedEvents returns the already recorded events among the batch's ids.
func recordedEvents(tx *gorm.DB, events []UsageEvent) (map[string]*models.UsageEvent, error) {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	var found []*models.UsageEvent
	if err := tx.Where("event_id IN ?", ids).Find(&found).Error; err != nil {
		return nil, err
	}
	seen := make(map[string]*models.UsageEvent, len(found))
	for _, r := range found {
		seen[r.EventID] = r
	}
	return seen, nil
}

// lockCustomers locks the batch's customers in id order (so that concurrent
// batches queue rather than deadlock), reads the alert rules in force for
// them, and refuses the batch if one is unknown. The rules of their partners
// and of the platform come in one statement for the batch (subqueries per
// customer row, as a single change reads them, cost a tenth of a batch).
func lockCustomers(tx *gorm.DB, events []UsageEvent) (map[uint]*models.Customer, map[uint]rules.Rules, error) {
	var ids []uint
	for _, e := range events {
		ids = append(ids, e.CustomerID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	// Only the columns the rules need, scanned by hand: this runs while the
	// customers are locked, and GORM's reflection over 500 whole rows showed
	// in the profile.
	rows, err := tx.Raw("SELECT id, partner_id, credit, used, non_stop_privilege, billing_permission, alert_fired, alert_percent_levels, alert_available_levels"+
		" FROM customers WHERE id IN ? ORDER BY id"+database.ForUpdate(tx), ids).Rows()
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	byID := make(map[uint]*models.Customer, len(ids))
	all := make([]*models.Customer, 0, len(ids))
	for rows.Next() {
		c := &models.Customer{}
		if err := rows.Scan(&c.ID, &c.PartnerID, &c.Credit, &c.Used, &c.NonStopPrivilege, &c.BillingPermission, &c.AlertFired,
			&c.AlertPercentLevels, &c.AlertAvailableLevels); err != nil {
			return nil, nil, err
		}
		c.Refresh()
		byID[c.ID] = c
		all = append(all, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for i, e := range events {
		if byID[e.CustomerID] == nil {
			return nil, nil, errs.E(errs.BadUserInput, "events[%d]: no customer with id %d", i, e.CustomerID)
		}
	}
	inForce, err := outbox.RulesFor(tx, all)
	return byID, inForce, err
}
