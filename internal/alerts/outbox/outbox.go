// Package outbox is the write side of alerts: inside a change's transaction it
// decides, under the rules in force for each changed customer, which alerts
// the change raises, and writes them to the outbox (raised_alerts); the
// sequencer then numbers committed outbox rows into the alerts table.
package outbox

import (
	"context"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Alerts reach the alerts table in two steps.
//
// A change writes the alerts it raises to the outbox, raised_alerts, in its
// own transaction: they commit or roll back with it, and the change takes no
// lock but its own rows. Changes of different partners raising alerts at once
// do not wait for each other.
//
// A pass of the sequencer (Sequence, run by every process's tail) then
// moves committed outbox rows into the alerts table, numbered from the alert
// sequence, in one short transaction that holds the sequence row to commit.
// Passes of all processes take turns on that row, so alert ids become visible
// in id order, without gaps (a pass that rolls back returns its ids), and a
// tail asking for "id > last" never skips one. A pass moves every committed row
// at once, so under load one pass numbers the alerts of many changes.

// Insert writes alerts a change raised to the outbox in tx, the change's
// transaction, and sets each one's RaisedID (the outbox row's id: see
// database.InsertedIDs).
func Insert(tx *gorm.DB, alerts []*models.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	now := tx.NowFunc()
	res, err := database.InsertRows(tx, "raised_alerts",
		[]string{"partner_id", "customer_id", "threshold", "usage_basis_points", "used", "credit", "available", "created_at", "kind", "cause", "level", "recovered_kind", "status", "previous_status",
			"burn_rate_per_day", "depletes_at", "days_left", "based_on_hours"},
		len(alerts), func(i int) []any {
			a := alerts[i]
			a.CreatedAt = now
			return []any{a.PartnerID, a.CustomerID, a.Threshold, a.UsageBasisPoints, a.Used, a.Credit, a.Available, a.CreatedAt, a.Kind, a.Cause, a.Level, a.RecoveredKind, a.Status, a.PreviousStatus,
				a.BurnRatePerDay, a.DepletesAt, a.DaysLeft, a.BasedOnHours}
		})
	if err != nil {
		return err
	}
	ids, err := database.InsertedIDs(tx, res, len(alerts))
	if err != nil {
		return err
	}
	for i, a := range alerts {
		a.RaisedID = &ids[i]
	}
	return nil
}

// PassSize is the most outbox rows one pass moves.
const PassSize = 1000

// Sequence moves committed outbox rows, oldest first, into the alerts table
// and returns the alerts it numbered, in id order. Nothing else is written
// in its transaction: it holds the sequence row that every pass waits for.
func Sequence(ctx context.Context, db *gorm.DB) ([]*models.Alert, error) {
	var moved []*models.Alert
	err := database.Transact(ctx, db, func(tx *gorm.DB) error {
		moved = nil
		// The sequence row first: passes take turns. Then a plain read, which
		// skips rows of changes still in flight (a locking read would wait
		// for them).
		var last uint
		if err := database.QueryRow(tx, "SELECT last_id FROM alert_sequences WHERE id = 1"+database.ForUpdate(tx)).Scan(&last); err != nil {
			return err
		}
		rows, err := database.Query(tx, "SELECT id, partner_id, customer_id, threshold, usage_basis_points, used, credit, available, created_at, "+
			"kind, cause, level, recovered_kind, status, previous_status, burn_rate_per_day, depletes_at, days_left, based_on_hours"+
			" FROM raised_alerts ORDER BY id LIMIT ?", PassSize)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a := &models.Alert{RaisedID: new(uint)}
			if err := rows.Scan(a.RaisedID, &a.PartnerID, &a.CustomerID, &a.Threshold, &a.UsageBasisPoints, &a.Used, &a.Credit, &a.Available, &a.CreatedAt,
				&a.Kind, &a.Cause, &a.Level, &a.RecoveredKind, &a.Status, &a.PreviousStatus,
				&a.BurnRatePerDay, &a.DepletesAt, &a.DaysLeft, &a.BasedOnHours); err != nil {
				return err
			}
			a.ID = last + uint(len(moved)) + 1
			moved = append(moved, a)
		}
		if err := rows.Err(); err != nil || len(moved) == 0 {
			return err
		}
		rows.Close()
		if _, err := database.InsertRows(tx, "alerts",
			[]string{"id", "raised_id", "partner_id", "customer_id", "threshold", "usage_basis_points", "used", "credit", "available", "created_at",
				"kind", "cause", "level", "recovered_kind", "status", "previous_status",
				"burn_rate_per_day", "depletes_at", "days_left", "based_on_hours"},
			len(moved), func(i int) []any {
				a := moved[i]
				return []any{a.ID, *a.RaisedID, a.PartnerID, a.CustomerID, a.Threshold, a.UsageBasisPoints, a.Used, a.Credit, a.Available, a.CreatedAt,
					a.Kind, a.Cause, a.Level, a.RecoveredKind, a.Status, a.PreviousStatus,
					a.BurnRatePerDay, a.DepletesAt, a.DaysLeft, a.BasedOnHours}
			}); err != nil {
			return err
		}
		in, args := database.In(raisedIDs(moved))
		if _, err := database.Exec(tx, "DELETE FROM raised_alerts WHERE id IN "+in, args...); err != nil {
			return err
		}
		_, err = database.Exec(tx, "UPDATE alert_sequences SET last_id = ? WHERE id = 1", moved[len(moved)-1].ID)
		return err
	})
	return moved, err
}

func raisedIDs(alerts []*models.Alert) []uint {
	ids := make([]uint, len(alerts))
	for i, a := range alerts {
		ids[i] = *a.RaisedID
	}
	return ids
}

// Pending tells whether the outbox holds rows to move.
func Pending(ctx context.Context, db *gorm.DB) (bool, error) {
	var n int
	err := db.WithContext(ctx).Raw("SELECT COUNT(*) FROM (SELECT id FROM raised_alerts LIMIT 1) t").Scan(&n).Error
	return n > 0, err
}
