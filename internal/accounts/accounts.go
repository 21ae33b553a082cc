// Package accounts manages partners and their customers, and answers
// the questions about them: who may see what, listings, purchase checks.
// Changes of credit are the ledger's job.
package accounts

import (
	"context"
	"errors"
	"regexp"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// Service manages partners and customers.
type Service struct {
	db *gorm.DB
	// loads shares identical customer loads in flight (see CustomersByID).
	loads singleflight.Group
	// outbox hears of alerts a privilege change committed.
	outbox Notifier
}

// Notifier is told that a change committed alerts to the outbox
// (alerts.Service), so that they reach listeners at once.
type Notifier interface{ Raised() }

// New returns a Service on db that tells outbox of the alerts raised by
// changes of privileges (nil: nobody is told; the alerts tail finds them at
// its next poll).
func New(db *gorm.DB, outbox Notifier) *Service {
	return &Service{db: db, outbox: outbox}
}

// NewPartner is the input of CreatePartner.
type NewPartner struct {
	Name       string
	CreditLine money.Amount
	Currency   string
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// CreatePartner creates a partner (ADMIN).
func (s *Service) CreatePartner(ctx context.Context, in NewPartner) (*models.Partner, error) {
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return nil, err
	}
	name, err := input.Name("name", in.Name, 200)
	if err != nil {
		return nil, err
	}
	if in.CreditLine < 0 {
		return nil, errs.E(errs.BadUserInput, "creditLine must not be negative")
	}
	if in.Currency == "" {
		in.Currency = "USD"
	}
	if !currencyCode.MatchString(in.Currency) {
		return nil, errs.E(errs.BadUserInput, "currency must be a three-letter ISO 4217 code such as USD")
	}
	p := &models.Partner{Name: name, CreditLine: in.CreditLine, Currency: in.Currency}
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		if err := tx.Create(p).Error; err != nil {
			return err
		}
		// The partner's alert rules row, which changes read with a shared
		// lock (see outbox.RuleColumns): it inherits until the partner sets rules.
		_, err := database.Exec(tx, "INSERT INTO alert_rules (partner_id) VALUES (?)", p.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Partner returns a partner: for a PARTNER key its own (id, if given, must be
// it), for ADMIN the one named. It returns nil when there is no such partner the
// caller may see.
func (s *Service) Partner(ctx context.Context, id *uint) (*models.Partner, error) {
	pid, err := s.partnerScope(ctx, id)
	switch {
	case errs.CodeOf(err) == errs.NotFound:
		return nil, nil
	case err != nil:
		return nil, err
	case pid == 0:
		return nil, errs.E(errs.BadUserInput, "name a partner: an ADMIN key has none of its own")
	}
	return s.PartnerByID(ctx, pid)
}

// SetCreditLine changes a partner's credit line (ADMIN). A line below what the
// partner has allocated is PARTNER_CREDIT_EXCEEDED: take credit back first.
func (s *Service) SetCreditLine(ctx context.Context, id uint, line money.Amount) (*models.Partner, error) {
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return nil, err
	}
	if line < 0 {
		return nil, errs.E(errs.BadUserInput, "creditLine must not be negative")
	}
	var p models.Partner
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		if err := database.Lock(tx, &p, id, "partner"); err != nil {
			return err
		}
		if line < p.Allocated {
			return errs.E(errs.PartnerCreditExceeded,
				"the partner has allocated %s: the credit line cannot be %s", p.Allocated, line)
		}
		p.CreditLine = line
		return tx.Model(&p).Update("credit_line", line).Error
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// PartnerByID returns the partner with the id, or nil. It checks no permission:
// callers have established that the caller may see it.
func (s *Service) PartnerByID(ctx context.Context, id uint) (*models.Partner, error) {
	var p models.Partner
	err := s.db.WithContext(ctx).Take(&p, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// partnerScope returns the partner a request is about: a PARTNER key's own
// partner (naming another is NOT_FOUND, as if it did not exist), or for ADMIN the
// named one, which must exist (0 when none is named). Other roles are FORBIDDEN.
func (s *Service) partnerScope(ctx context.Context, named *uint) (uint, error) {
	return PartnerScope(ctx, s.db, named)
}

// PartnerScope is partnerScope for services that keep no accounts.Service.
func PartnerScope(ctx context.Context, db *gorm.DB, named *uint) (uint, error) {
	p, err := auth.FromContext(ctx)
	if err != nil {
		return 0, err
	}
	if err := p.Require(auth.RoleAdmin, auth.RolePartner); err != nil {
		return 0, err
	}
	if p.Role == auth.RolePartner {
		if named != nil && *named != p.PartnerID {
			return 0, errs.E(errs.NotFound, "no such partner")
		}
		return p.PartnerID, nil
	}
	if named == nil {
		return 0, nil
	}
	var n int64
	if err := db.WithContext(ctx).Model(&models.Partner{}).Where("id = ?", *named).Count(&n).Error; err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errs.E(errs.NotFound, "no such partner")
	}
	return *named, nil
}

// ManagedPartner is PartnerScope for a change that needs a partner: an
// ADMIN key, which has none of its own, must name one (BAD_USER_INPUT).
func ManagedPartner(ctx context.Context, db *gorm.DB, named *uint) (uint, error) {
	id, err := PartnerScope(ctx, db, named)
	if err == nil && id == 0 {
		err = errs.E(errs.BadUserInput, "partnerId: name the partner (an ADMIN key has none of its own)")
	}
	return id, err
}

// ForeignCustomer returns the first of ids (sorted, each once) that is not a
// customer of the partner, and false when every one is. Another partner's
// customer is as foreign as one that does not exist.
func ForeignCustomer(db *gorm.DB, partnerID uint, ids []uint) (uint, bool, error) {
	if len(ids) == 0 {
		return 0, false, nil
	}
	var found []uint
	if err := db.Model(&models.Customer{}).Where("partner_id = ? AND id IN ?", partnerID, ids).Order("id").Pluck("id", &found).Error; err != nil {
		return 0, false, err
	}
	for i, id := range ids {
		if i >= len(found) || found[i] != id {
			return id, true, nil
		}
	}
	return 0, false, nil
}

// NewCustomer is the input of CreateCustomer.
type NewCustomer struct {
	Name              string
	Email             *string
	Remark            *string
	BillingPermission bool
	PartnerID         *uint
}

// CreateCustomer creates a customer with no credit (ADMIN names the partner).
func (s *Service) CreateCustomer(ctx context.Context, in NewCustomer) (*models.Customer, error) {
	partnerID, err := s.partnerScope(ctx, in.PartnerID)
	if err != nil {
		return nil, err
	}
	if partnerID == 0 {
		return nil, errs.E(errs.BadUserInput, "partnerId is required with an ADMIN key")
	}
	c := &models.Customer{PartnerID: partnerID, BillingPermission: in.BillingPermission}
	if c.Name, err = input.Name("name", in.Name, 200); err != nil {
		return nil, err
	}
	if c.Email, err = input.Email(in.Email); err != nil {
		return nil, err
	}
	if c.Remark, err = input.Optional("remark", in.Remark, 1000); err != nil {
		return nil, err
	}
	c.Refresh()
	if err := s.db.WithContext(ctx).Create(c).Error; err != nil {
		return nil, err
	}
	return c, nil
}

func requireRole(ctx context.Context, roles ...auth.Role) error {
	_, err := auth.Require(ctx, roles...)
	return err
}

// PartnerByName returns the oldest partner with the name, or nil.
func (s *Service) PartnerByName(ctx context.Context, name string) (*models.Partner, error) {
	var rows []models.Partner
	if err := s.db.WithContext(ctx).Where("name = ?", name).Order("id").Limit(1).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// IsEmpty tells whether the store has no partners yet.
func (s *Service) IsEmpty(ctx context.Context) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&models.Partner{}).Count(&n).Error
	return n == 0, err
}

// Partners lists all partners, oldest first (ADMIN).
func (s *Service) Partners(ctx context.Context, args page.Args) (page.Result[*models.Partner], error) {
	var none page.Result[*models.Partner]
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Model(&models.Partner{})
	return database.PageByID(q, req, func(p *models.Partner) uint { return p.ID })
}
