package alerts

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// RulesInForce are the alert rules in force at one scope, with where each
// comes from.
type RulesInForce struct {
	PercentThresholds          []int
	PercentThresholdsSource    rules.Source
	AvailableBelow             []money.Amount
	AvailableBelowSource       rules.Source
	ForecastHorizonHours       int
	ForecastHorizonHoursSource rules.Source
}

func inForce(platform, partner, customer *rules.Set) *RulesInForce {
	r, src := rules.Effective(platform, partner, customer)
	return &RulesInForce{PercentThresholds: r.Percent, PercentThresholdsSource: src.Percent,
		AvailableBelow: r.Available, AvailableBelowSource: src.Available,
		ForecastHorizonHours: r.HorizonHours, ForecastHorizonHoursSource: src.Horizon}
}

// RuleChange is one recorded change of the rules at a scope, with the
// scope's rule set after it.
type RuleChange struct {
	ID                   uint
	Scope                rules.Source
	PartnerID            *uint
	CustomerID           *uint
	PercentThresholds    []int
	AvailableBelow       []money.Amount
	ForecastHorizonHours *int
	Operator             string
	CreatedAt            time.Time
}

// RulesChange is a change of the rules at one scope: a field not set is left
// as it is; set to nil, the scope inherits again.
type RulesChange struct {
	Percent   graphql.Omittable[[]int]
	Available graphql.Omittable[[]money.Amount]
	Horizon   graphql.Omittable[*int]
}

// PlatformRules returns the platform's default rules.
func (s *Service) PlatformRules(ctx context.Context) (*RulesInForce, error) {
	if _, err := viewerScope(ctx); err != nil {
		return nil, err
	}
	platform, _, err := outbox.PartnerSets(s.db.WithContext(ctx), nil, false)
	if err != nil {
		return nil, err
	}
	return inForce(platform, nil, nil), nil
}

// Inherited are the rule sets a partner's customers inherit: the platform's
// and the partner's.
type Inherited struct {
	Platform, Partner *rules.Set
}

// InheritedRules reads, in one statement, the sets the customers of each of
// the partners inherit (in the order of partnerIDs): a page of customers
// costs one read of rules, not one per customer.
func (s *Service) InheritedRules(ctx context.Context, partnerIDs []uint) ([]Inherited, error) {
	platform, partners, err := outbox.PartnerSets(s.db.WithContext(ctx), partnerIDs, false)
	if err != nil {
		return nil, err
	}
	out := make([]Inherited, len(partnerIDs))
	for i, id := range partnerIDs {
		out[i] = Inherited{Platform: platform, Partner: partners[id]}
	}
	return out, nil
}

// PartnerRules returns a partner's default rules for its customers (the
// caller has read the partner, so may see them).
func (in Inherited) PartnerRules() *RulesInForce {
	return inForce(in.Platform, in.Partner, nil)
}

// CustomerRules returns the rules in force for a customer of the partner
// (the caller has read the customer, so may see them).
func (in Inherited) CustomerRules(c *models.Customer) *RulesInForce {
	return inForce(in.Platform, in.Partner, outbox.CustomerSet(c))
}

// PartnerRules returns a partner's default rules for its customers.
func (s *Service) PartnerRules(ctx context.Context, partnerID uint) (*RulesInForce, error) {
	in, err := s.InheritedRules(ctx, []uint{partnerID})
	if err != nil {
		return nil, err
	}
	return in[0].PartnerRules(), nil
}

// CustomerRules returns the rules in force for a customer.
func (s *Service) CustomerRules(ctx context.Context, c *models.Customer) (*RulesInForce, error) {
	in, err := s.InheritedRules(ctx, []uint{c.PartnerID})
	if err != nil {
		return nil, err
	}
	return in[0].CustomerRules(c), nil
}

// SetPlatformRules changes the platform's default rules (ADMIN).
func (s *Service) SetPlatformRules(ctx context.Context, in RulesChange) (*RulesInForce, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	if err := s.setPartnerRules(ctx, p, 0, in); err != nil {
		return nil, err
	}
	return s.PlatformRules(ctx)
}

// SetPartnerRules changes a partner's default rules: a PARTNER key its own,
// ADMIN any partner it names.
func (s *Service) SetPartnerRules(ctx context.Context, partnerID *uint, in RulesChange) (*RulesInForce, error) {
	id, err := accounts.ManagedPartner(ctx, s.db, partnerID)
	if err != nil {
		return nil, err
	}
	p, _ := auth.FromContext(ctx)
	if err := s.setPartnerRules(ctx, p, id, in); err != nil {
		return nil, err
	}
	return s.PartnerRules(ctx, id)
}

// SetCustomerRules changes one customer's own rules (its partner or ADMIN).
func (s *Service) SetCustomerRules(ctx context.Context, customerID uint, in RulesChange) (*RulesInForce, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	change, err := checkChange(in)
	if err != nil {
		return nil, err
	}
	var c *models.Customer
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		// The customer's row holds its rules: the lock orders the change with
		// the customer's credit and usage changes.
		if c, err = accounts.FindCustomer(tx, p, customerID, true); err != nil {
			return err
		}
		after := change(*outbox.CustomerSet(c))
		c.AlertPercentLevels, c.AlertAvailableLevels = rules.EncodePercent(after.Percent), rules.EncodeAvailable(after.Available)
		c.AlertForecastHorizonHours = after.HorizonHours
		if _, err := database.Exec(tx, "UPDATE customers SET alert_percent_levels = ?, alert_available_levels = ?, alert_forecast_horizon_hours = ? WHERE id = ?",
			c.AlertPercentLevels, c.AlertAvailableLevels, c.AlertForecastHorizonHours, c.ID); err != nil {
			return err
		}
		return recordChange(tx, p, c.PartnerID, c.ID, after)
	})
	if err != nil {
		return nil, err
	}
	return s.CustomerRules(ctx, c)
}

// checkChange validates a change of rules (nothing is applied when a field is
// invalid) and returns what it does to a rule set.
func checkChange(in RulesChange) (func(rules.Set) rules.Set, error) {
	percent, percentSet := in.Percent.ValueOK()
	available, availableSet := in.Available.ValueOK()
	horizon, horizonSet := in.Horizon.ValueOK()
	var err error
	if horizonSet && horizon != nil {
		if err := rules.CheckHorizon("forecastHorizonHours", *horizon); err != nil {
			return nil, err
		}
	}
	if percentSet && percent != nil {
		if percent, err = rules.CheckPercent("percentThresholds", percent); err != nil {
			return nil, err
		}
	}
	if availableSet && available != nil {
		if available, err = rules.CheckAvailable("availableBelow", available); err != nil {
			return nil, err
		}
	}
	return func(set rules.Set) rules.Set {
		if percentSet {
			set.Percent = percent
		}
		if availableSet {
			set.Available = available
		}
		if horizonSet {
			set.HorizonHours = horizon
		}
		return set
	}, nil
}

// setPartnerRules changes the rules row of a partner (0: the platform) under
// an exclusive lock, and records the change, in one transaction.
func (s *Service) setPartnerRules(ctx context.Context, p auth.Principal, partnerID uint, in RulesChange) error {
	change, err := checkChange(in)
	if err != nil {
		return err
	}
	return database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		type row struct {
			PercentLevels, AvailableLevels *string
			ForecastHorizonHours           *int
		}
		var current []row
		err := tx.Raw("SELECT percent_levels, available_levels, forecast_horizon_hours FROM alert_rules WHERE partner_id = ?"+database.ForUpdate(tx), partnerID).Scan(&current).Error
		if err != nil {
			return err
		}
		if len(current) == 0 { // a partner written into the store directly
			if _, err := database.Exec(tx, "INSERT INTO alert_rules (partner_id) VALUES (?)", partnerID); err != nil {
				return err
			}
			current = append(current, row{})
		}
		set := rules.DecodeSet(current[0].PercentLevels, current[0].AvailableLevels)
		set.HorizonHours = current[0].ForecastHorizonHours
		after := change(set)
		if _, err := database.Exec(tx, "UPDATE alert_rules SET percent_levels = ?, available_levels = ?, forecast_horizon_hours = ?, updated_by = ?, updated_at = ? WHERE partner_id = ?",
			rules.EncodePercent(after.Percent), rules.EncodeAvailable(after.Available), after.HorizonHours, p.KeyName, tx.NowFunc(), partnerID); err != nil {
			return err
		}
		return recordChange(tx, p, partnerID, 0, after)
	})
}

// recordChange writes the record of a rule change: the scope's set after it,
// who made it and when (taken while the scope's row is locked).
func recordChange(tx *gorm.DB, p auth.Principal, partnerID, customerID uint, after rules.Set) error {
	_, err := database.Exec(tx, "INSERT INTO alert_rule_changes (partner_id, customer_id, percent_levels, available_levels, forecast_horizon_hours, operator, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		partnerID, customerID, rules.EncodePercent(after.Percent), rules.EncodeAvailable(after.Available), after.HorizonHours, p.KeyName, tx.NowFunc())
	return err
}

// RuleChanges lists recorded changes of rules, newest first: a PARTNER key's
// own (its default and its customers'), ADMIN every one (or one partner's).
func (s *Service) RuleChanges(ctx context.Context, partnerID, customerID *uint, args page.Args) (page.Result[*RuleChange], error) {
	var none page.Result[*RuleChange]
	scope, err := viewerScope(ctx)
	if err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Table("alert_rule_changes")
	switch {
	case scope != 0:
		q = q.Where("partner_id = ?", scope)
	case partnerID != nil:
		q = q.Where("partner_id = ?", *partnerID)
	}
	if customerID != nil {
		q = q.Where("customer_id = ?", *customerID)
	}
	total, err := database.CountIf(req.Count, q)
	if err != nil {
		return none, err
	}
	var rows []struct {
		ID, PartnerID, CustomerID      uint
		PercentLevels, AvailableLevels *string
		ForecastHorizonHours           *int
		Operator                       string
		CreatedAt                      time.Time
	}
	q = database.Seek(q, "id", true, req.After != nil, nil, req.AfterID())
	if err := q.Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	out := make([]*RuleChange, len(rows))
	for i, r := range rows {
		set := rules.DecodeSet(r.PercentLevels, r.AvailableLevels)
		c := &RuleChange{ID: r.ID, Scope: rules.FromPlatform, PercentThresholds: set.Percent, AvailableBelow: set.Available,
			ForecastHorizonHours: r.ForecastHorizonHours, Operator: r.Operator, CreatedAt: r.CreatedAt}
		if r.PartnerID != 0 {
			c.Scope, c.PartnerID = rules.FromPartner, &rows[i].PartnerID
		}
		if r.CustomerID != 0 {
			c.Scope, c.CustomerID = rules.FromCustomer, &rows[i].CustomerID
		}
		out[i] = c
	}
	return page.Build(out, req, total, func(c *RuleChange) page.Cursor { return page.Cursor{ID: c.ID} }), nil
}
