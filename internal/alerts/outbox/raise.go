package outbox

import (
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Where the rules live: a customer's own on its row (locked by every change of
// it already); the platform's (partner 0) and each partner's in alert_rules,
// one row each. A change reads those rows with a shared lock and a rule change
// writes its row under an exclusive one, so each change runs wholly under the
// rules before or after a rule change, and the times they record follow that
// order (reconcile replays history by them).

// PartnerSets reads the rule sets of the platform and of the partners named.
// With share, the rows stay locked against rule changes until the end of tx.
func PartnerSets(tx *gorm.DB, partnerIDs []uint, share bool) (platform *rules.Set, partners map[uint]*rules.Set, err error) {
	in, args := database.In(append([]uint{0}, partnerIDs...))
	lock := ""
	if share {
		lock = database.ForShare(tx)
	}
	rows, err := tx.Raw("SELECT partner_id, percent_levels, available_levels, forecast_horizon_hours FROM alert_rules WHERE partner_id IN "+in+lock, args...).Rows()
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	partners = map[uint]*rules.Set{}
	for rows.Next() {
		var id uint
		var percent, available *string
		var horizon *int
		if err := rows.Scan(&id, &percent, &available, &horizon); err != nil {
			return nil, nil, err
		}
		set := rules.DecodeSet(percent, available)
		set.HorizonHours = horizon
		if id == 0 {
			platform = &set
		} else {
			partners[id] = &set
		}
	}
	return platform, partners, rows.Err()
}

// WithCustomer is the rules of a customer's partner and of the platform, read
// in the statement that locks the customer (no round trip of their own), by
// scalar subqueries that lock their rows shared: see RuleColumns.
type WithCustomer struct {
	partnerPercent, partnerAvailable, platformPercent, platformAvailable *string
}

// RuleColumns are the columns to add to a locking read of customers (table
// customers, unaliased) for WithCustomer. The locking clause of the outer
// statement does not reach subqueries, so each takes its own shared lock.
func RuleColumns(tx *gorm.DB) string {
	share := database.ForShare(tx)
	col := func(column, partner string) string {
		return ", (SELECT " + column + " FROM alert_rules WHERE partner_id = " + partner + share + ")"
	}
	return col("percent_levels", "customers.partner_id") + col("available_levels", "customers.partner_id") +
		col("percent_levels", "0") + col("available_levels", "0")
}

// Fields are where the RuleColumns go.
func (w *WithCustomer) Fields() []any {
	return []any{&w.partnerPercent, &w.partnerAvailable, &w.platformPercent, &w.platformAvailable}
}

// Rules are the rules in force for c.
func (w *WithCustomer) Rules(c *models.Customer) rules.Rules {
	platform := rules.DecodeSet(w.platformPercent, w.platformAvailable)
	partner := rules.DecodeSet(w.partnerPercent, w.partnerAvailable)
	r, _ := rules.Effective(&platform, &partner, CustomerSet(c))
	return r
}

// CustomerSet is the customer's own rule set.
func CustomerSet(c *models.Customer) *rules.Set {
	set := rules.DecodeSet(c.AlertPercentLevels, c.AlertAvailableLevels)
	set.HorizonHours = c.AlertForecastHorizonHours
	return &set
}

// RulesFor returns the rules in force for each of the customers, which the
// caller's transaction holds locked, and locks their partners' and the
// platform's rule rows (shared) until the end of tx.
func RulesFor(tx *gorm.DB, customers []*models.Customer) (map[uint]rules.Rules, error) {
	return RulesOf(tx, customers, true)
}

// RulesOf returns the rules in force for each of the customers, in one
// statement; with share, as RulesFor.
func RulesOf(db *gorm.DB, customers []*models.Customer, share bool) (map[uint]rules.Rules, error) {
	var partnerIDs []uint
	seen := map[uint]bool{}
	for _, c := range customers {
		if !seen[c.PartnerID] {
			seen[c.PartnerID] = true
			partnerIDs = append(partnerIDs, c.PartnerID)
		}
	}
	platform, partners, err := PartnerSets(db, partnerIDs, share)
	if err != nil {
		return nil, err
	}
	out := make(map[uint]rules.Rules, len(customers))
	for _, c := range customers {
		out[c.ID], _ = rules.Effective(platform, partners[c.PartnerID], CustomerSet(c))
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
