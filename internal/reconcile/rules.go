package reconcile

import (
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/rules"
)

// kindsVersion is the migration that brought alert rules and kinds: history
// before it raised usage thresholds only (75, 90, 100 %).
const kindsVersion = 7

// ruleHistory is every recorded change of alert rules, to replay a
// customer's history under the rules in force at each step.
type ruleHistory struct {
	changes  []ruleChange
	partners map[uint]uint // customer → partner
	// kindsSince is when the store started raising every kind.
	kindsSince time.Time
}

// scope is where a rule set applies: the platform (both 0), a partner
// (customerID 0) or a customer.
type scope struct{ partnerID, customerID uint }

type ruleChange struct {
	scope scope
	set   rules.Set
	at    time.Time
}

func loadRuleHistory(db *gorm.DB) (*ruleHistory, error) {
	h := &ruleHistory{partners: map[uint]uint{}}
	rows, err := db.Raw("SELECT partner_id, customer_id, percent_levels, available_levels, created_at FROM alert_rule_changes ORDER BY id").Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c ruleChange
		var percent, available *string
		if err := rows.Scan(&c.scope.partnerID, &c.scope.customerID, &percent, &available, &c.at); err != nil {
			return nil, err
		}
		c.set = rules.DecodeSet(percent, available)
		h.changes = append(h.changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var owners []struct{ ID, PartnerID uint }
	if err := db.Table("customers").Select("id, partner_id").Find(&owners).Error; err != nil {
		return nil, err
	}
	for _, o := range owners {
		h.partners[o.ID] = o.PartnerID
	}
	err = db.Raw("SELECT tstamp FROM goose_db_version WHERE version_id = ?", kindsVersion).Row().Scan(&h.kindsSince)
	return h, err
}

// at returns the rules in force for the customer at t.
func (h *ruleHistory) at(customer uint, t time.Time) rules.Rules {
	partner := h.partners[customer]
	var platformSet, partnerSet, customerSet *rules.Set
	for i := range h.changes {
		c := &h.changes[i]
		if c.at.After(t) {
			break
		}
		switch c.scope {
		case scope{}:
			platformSet = &c.set
		case scope{partnerID: partner}:
			partnerSet = &c.set
		case scope{partnerID: partner, customerID: customer}:
			customerSet = &c.set
		}
	}
	r, _ := rules.Effective(platformSet, partnerSet, customerSet)
	return r
}

// beforeKinds tells whether t is before the store raised every kind.
func (h *ruleHistory) beforeKinds(t time.Time) bool { return t.Before(h.kindsSince) }
