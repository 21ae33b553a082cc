package ledger

import (
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// alertsFor returns an alert (without id) for each threshold a change of the
// customer's balance from before crossed, lowest first, with the customer's
// figures right after the change.
func alertsFor(c *models.Customer, before credit.Balance) []*models.Alert {
	var out []*models.Alert
	for _, t := range credit.Crossed(before, c.Balance()) {
		out = append(out, &models.Alert{
			PartnerID:        c.PartnerID,
			CustomerID:       c.ID,
			Threshold:        t,
			UsageBasisPoints: c.UsageBasisPoints,
			Used:             c.Used,
			Credit:           c.Credit,
			Available:        c.Available,
		})
	}
	return out
}

// writeAlerts numbers the alerts from the alert sequence and inserts them.
//
// Call it last in a transaction: the sequence row stays locked until commit, so
// a transaction that takes the next ids can only do so after this one's alerts
// are visible. Alert ids therefore appear in the table in id order, which is
// what the tail of every process and resuming listeners rely on.
func writeAlerts(tx *gorm.DB, alerts []*models.Alert) error {
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
