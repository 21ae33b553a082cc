package ledger

import (
	"github.com/cloudreseller/credit/internal/credit"
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
