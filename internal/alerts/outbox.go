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
// seen" cannot skip one. The lock is held only from here to commit, and only by
// transactions that raise alerts, which are few.
func Insert(tx *gorm.DB, alerts []*models.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	var seq models.AlertSequence
	if err := database.LockByID(tx, &seq, 1); err != nil {
		return err
	}
	for i, a := range alerts {
		a.ID = seq.LastID + uint(i) + 1
	}
	if err := tx.Create(alerts).Error; err != nil {
		return err
	}
	return tx.Model(&seq).Update("last_id", seq.LastID+uint(len(alerts))).Error
}
