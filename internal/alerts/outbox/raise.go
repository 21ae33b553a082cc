package outbox

import (
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Scope names where a rule set applies: the platform (both 0), a partner
// (CustomerID 0) or a customer.
type Scope struct {
	PartnerID, CustomerID uint
}

// LoadSets reads the rule sets of the platform, the partners and the
// customers named, in one statement.
func LoadSets(tx *gorm.DB, partnerIDs, customerIDs []uint) (map[Scope]*rules.Set, error) {
	partners, pargs := database.In(append([]uint{0}, partnerIDs...))
	q := "SELECT partner_id, customer_id, percent_levels, available_levels FROM alert_rules WHERE (customer_id = 0 AND partner_id IN " + partners + ")"
	args := pargs
	if len(customerIDs) > 0 {
		customers, cargs := database.In(customerIDs)
		q += " OR customer_id IN " + customers
		args = append(args, cargs...)
	}
	rows, err := tx.Raw(q, args...).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	sets := map[Scope]*rules.Set{}
	for rows.Next() {
		var sc Scope
		var percent, available *string
		if err := rows.Scan(&sc.PartnerID, &sc.CustomerID, &percent, &available); err != nil {
			return nil, err
		}
		set := rules.DecodeSet(percent, available)
		sets[sc] = &set
	}
	return sets, rows.Err()
}

// RulesFor returns the rules in force for each of the customers, which the
// caller's transaction holds locked: a rule changed meanwhile applies from the
// next change on.
func RulesFor(tx *gorm.DB, customers []*models.Customer) (map[uint]rules.Rules, error) {
	var partnerIDs, customerIDs []uint
	seen := map[uint]bool{}
	for _, c := range customers {
		customerIDs = append(customerIDs, c.ID)
		if !seen[c.PartnerID] {
			seen[c.PartnerID] = true
			partnerIDs = append(partnerIDs, c.PartnerID)
		}
	}
	sets, err := LoadSets(tx, partnerIDs, customerIDs)
	if err != nil {
		return nil, err
	}
	out := make(map[uint]rules.Rules, len(customers))
	for _, c := range customers {
		out[c.ID], _ = rules.Effective(sets[Scope{}], sets[Scope{PartnerID: c.PartnerID}], sets[Scope{PartnerID: c.PartnerID, CustomerID: c.ID}])
	}
	return out, nil
}

// StateOf is what the rules look at of a customer now.
func StateOf(c *models.Customer) rules.State {
	return rules.State{Balance: c.Balance(), Status: c.Status}
}

// Apply returns the alerts (without ids) that the change of c from before to
// its state now raises under r, with c's figures right after the change, and
// updates c.AlertFired, which the caller stores with the change.
func Apply(r rules.Rules, cause rules.Cause, c *models.Customer, before rules.State) []*models.Alert {
	events, fired := rules.Evaluate(r, rules.DecodeFired(c.AlertFired), before, StateOf(c))
	c.AlertFired = fired.Encode()
	out := make([]*models.Alert, len(events))
	for i, e := range events {
		status := c.Status
		a := &models.Alert{
			PartnerID:        c.PartnerID,
			CustomerID:       c.ID,
			Kind:             e.Kind,
			Cause:            cause,
			Threshold:        e.Threshold,
			Level:            e.Level,
			UsageBasisPoints: c.UsageBasisPoints,
			Used:             c.Used,
			Credit:           c.Credit,
			Available:        c.Available,
			Status:           &status,
		}
		if e.RecoveredKind != "" {
			a.RecoveredKind = &e.RecoveredKind
		}
		if e.Kind == rules.StatusChanged {
			a.PreviousStatus = &e.PreviousStatus
		}
		out[i] = a
	}
	return out
}
