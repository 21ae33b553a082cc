package alerts

import (
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Insert numbers alerts from the alert sequence and writes them in tx, the
// transaction of the change that raised them.
//
// Call it last in the transaction: the sequence row stays locked until commit,
// so the next transaction that raises alerts takes its ids only once these are
// visible. Ids therefore become visible in id order, never out of it as
// overlapping auto-increment inserts would, and a tail asking for "id > last
// seen" cannot skip one. The lock is held only from here to commit (two
// statements and the commit), and only by transactions that raise alerts.
func Insert(tx *gorm.DB, alerts []*models.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	last, err := takeIDs(tx, len(alerts))
	if err != nil {
		return err
	}
	first, now := last-uint(len(alerts))+1, tx.NowFunc()
	return database.InsertRows(tx, "alerts",
		[]string{"id", "partner_id", "customer_id", "threshold", "usage_basis_points", "used", "credit", "available", "created_at"},
		len(alerts), func(i int) []any {
			a := alerts[i]
			a.ID, a.CreatedAt = first+uint(i), now
			return []any{a.ID, a.PartnerID, a.CustomerID, a.Threshold, a.UsageBasisPoints, a.Used, a.Credit, a.Available, a.CreatedAt}
		})
}

// takeIDs advances the sequence by n, locking its row until commit, and
// returns the last id taken, in one round trip: MySQL hands the new value back
// through LAST_INSERT_ID(expr), SQLite through RETURNING.
func takeIDs(tx *gorm.DB, n int) (uint, error) {
	if !database.IsMySQL(tx) {
		var last uint
		err := tx.Raw("UPDATE alert_sequences SET last_id = last_id + ? WHERE id = 1 RETURNING last_id", n).Row().Scan(&last)
		return last, err
	}
	res, err := database.Exec(tx, "UPDATE alert_sequences SET last_id = LAST_INSERT_ID(last_id + ?) WHERE id = 1", n)
	if err != nil {
		return 0, err
	}
	last, err := res.LastInsertId()
	return uint(last), err
}
