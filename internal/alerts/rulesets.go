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
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/internal/page"
)

// RulesInForce are the alert rules in force at one scope, with where each
// comes from.
type RulesInForce struct {
	PercentThresholds       []int
	PercentThresholdsSource rules.Source
	AvailableBelow          []money.Amount
	AvailableBelowSource    rules.Source
}

func inForce(platform, partner, customer *rules.Set) *RulesInForce {
	r, src := rules.Effective(platform, partner, customer)
	return &RulesInForce{PercentThresholds: r.Percent, PercentThresholdsSource: src.Percent,
		AvailableBelow: r.Available, AvailableBelowSource: src.Available}
}

// RuleChange is one recorded change of the rules at a scope, with the
// scope's rule set after it.
type RuleChange struct {
	ID                uint
	Scope             rules.Source
	PartnerID         *uint
	CustomerID        *uint
	PercentThresholds []int
	AvailableBelow    []money.Amount
	Operator          string
	CreatedAt         time.Time
}

// RulesChange is a change of the rules at one scope: a field not set is left
// as it is; set to nil, the scope inherits again.
type RulesChange struct {
	Percent   graphql.Omittable[[]int]
	Available graphql.Omittable[[]money.Amount]
}

// PlatformRules returns the platform's default rules.
func (s *Service) PlatformRules(ctx context.Context) (*RulesInForce, error) {
	if _, err := viewerScope(ctx); err != nil {
		return nil, err
	}
	sets, err := outbox.LoadSets(s.db.WithContext(ctx), nil, nil)
	if err != nil {
		return nil, err
	}
	return inForce(sets[outbox.Scope{}], nil, nil), nil
}

// PartnerRules returns a partner's default rules for its customers (the
// caller has read the partner, so may see them).
func (s *Service) PartnerRules(ctx context.Context, partnerID uint) (*RulesInForce, error) {
	sets, err := outbox.LoadSets(s.db.WithContext(ctx), []uint{partnerID}, nil)
	if err != nil {
		return nil, err
	}
	return inForce(sets[outbox.Scope{}], sets[outbox.Scope{PartnerID: partnerID}], nil), nil
}

// CustomerRules returns the rules in force for a customer (the caller has
// read the customer, so may see them).
func (s *Service) CustomerRules(ctx context.Context, partnerID, customerID uint) (*RulesInForce, error) {
	sets, err := outbox.LoadSets(s.db.WithContext(ctx), []uint{partnerID}, []uint{customerID})
	if err != nil {
		return nil, err
	}
	return inForce(sets[outbox.Scope{}], sets[outbox.Scope{PartnerID: partnerID}],
		sets[outbox.Scope{PartnerID: partnerID, CustomerID: customerID}]), nil
}

// SetPlatformRules changes the platform's default rules (ADMIN).
func (s *Service) SetPlatformRules(ctx context.Context, in RulesChange) (*RulesInForce, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin)
	if err != nil {
		return nil, err
	}
	return s.setRules(ctx, p, outbox.Scope{}, in)
}

// SetPartnerRules changes a partner's default rules: a PARTNER key its own,
// ADMIN any partner it names.
func (s *Service) SetPartnerRules(ctx context.Context, partnerID *uint, in RulesChange) (*RulesInForce, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	id := p.PartnerID
	switch {
	case p.Role == auth.RolePartner && partnerID != nil && *partnerID != p.PartnerID:
		return nil, errs.E(errs.NotFound, "no such partner")
	case p.Role == auth.RoleAdmin && partnerID == nil:
		return nil, errs.E(errs.BadUserInput, "partnerId: name the partner (an ADMIN key has none of its own)")
	case p.Role == auth.RoleAdmin:
		id = *partnerID
		var n int64
		if err := s.db.WithContext(ctx).Table("partners").Where("id = ?", id).Count(&n).Error; err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errs.E(errs.NotFound, "no such partner")
		}
	}
	return s.setRules(ctx, p, outbox.Scope{PartnerID: id}, in)
}

// SetCustomerRules changes one customer's own rules (its partner or ADMIN).
func (s *Service) SetCustomerRules(ctx context.Context, customerID uint, in RulesChange) (*RulesInForce, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	c, err := accounts.FindCustomer(s.db.WithContext(ctx), p, customerID, false)
	if err != nil {
		return nil, err
	}
	return s.setRules(ctx, p, outbox.Scope{PartnerID: c.PartnerID, CustomerID: c.ID}, in)
}

// setRules validates the change, then writes the scope's rule set and the
// record of the change in one transaction. Nothing is half-applied: an
// invalid field refuses the whole change.
func (s *Service) setRules(ctx context.Context, p auth.Principal, scope outbox.Scope, in RulesChange) (*RulesInForce, error) {
	percent, percentSet := in.Percent.ValueOK()
	available, availableSet := in.Available.ValueOK()
	var err error
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
	var after rules.Set
	write := func(tx *gorm.DB) error {
		var current struct{ PercentLevels, AvailableLevels *string }
		err := tx.Raw("SELECT percent_levels, available_levels FROM alert_rules WHERE partner_id = ? AND customer_id = ?"+database.ForUpdate(tx),
			scope.PartnerID, scope.CustomerID).Scan(&current).Error
		if err != nil {
			return err
		}
		after = rules.DecodeSet(current.PercentLevels, current.AvailableLevels)
		if percentSet {
			after.Percent = percent
		}
		if availableSet {
			after.Available = available
		}
		now := tx.NowFunc()
		pl, al := rules.EncodePercent(after.Percent), rules.EncodeAvailable(after.Available)
		if _, err := database.Exec(tx, "DELETE FROM alert_rules WHERE partner_id = ? AND customer_id = ?", scope.PartnerID, scope.CustomerID); err != nil {
			return err
		}
		if pl != nil || al != nil {
			if _, err := database.Exec(tx, "INSERT INTO alert_rules (partner_id, customer_id, percent_levels, available_levels, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
				scope.PartnerID, scope.CustomerID, pl, al, p.KeyName, now); err != nil {
				return err
			}
		}
		_, err = database.Exec(tx, "INSERT INTO alert_rule_changes (partner_id, customer_id, percent_levels, available_levels, operator, created_at) VALUES (?, ?, ?, ?, ?, ?)",
			scope.PartnerID, scope.CustomerID, pl, al, p.KeyName, now)
		return err
	}
	err = database.Transact(ctx, s.db, write)
	if database.IsDuplicate(err) {
		err = database.Transact(ctx, s.db, write) // another change of the scope inserted first
	}
	if err != nil {
		return nil, err
	}
	switch {
	case scope.CustomerID != 0:
		return s.CustomerRules(ctx, scope.PartnerID, scope.CustomerID)
	case scope.PartnerID != 0:
		return s.PartnerRules(ctx, scope.PartnerID)
	}
	return s.PlatformRules(ctx)
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
			Operator: r.Operator, CreatedAt: r.CreatedAt}
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
