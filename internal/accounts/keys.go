package accounts

import (
	"context"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// NewAPIKey is the input of CreateAPIKey.
type NewAPIKey struct {
	Name      string
	Role      auth.Role
	PartnerID *uint
}

// CreateAPIKey creates an API key (ADMIN) and returns its secret, which is not
// stored and cannot be shown again.
func (s *Service) CreateAPIKey(ctx context.Context, in NewAPIKey) (string, *models.APIKey, error) {
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return "", nil, err
	}
	return s.IssueAPIKey(ctx, in)
}

// IssueAPIKey creates an API key without asking who is calling: for the server's
// own start-up (the demo data) and for CreateAPIKey once it has checked the role.
func (s *Service) IssueAPIKey(ctx context.Context, in NewAPIKey) (string, *models.APIKey, error) {
	name, err := input.Required("name", in.Name, 100)
	if err != nil {
		return "", nil, err
	}
	switch {
	case in.Role == auth.RolePartner && in.PartnerID == nil:
		return "", nil, errs.E(errs.BadUserInput, "partnerId is required for a PARTNER key")
	case in.Role != auth.RolePartner && in.PartnerID != nil:
		return "", nil, errs.E(errs.BadUserInput, "only PARTNER keys belong to a partner")
	}
	if in.PartnerID != nil {
		p, err := s.PartnerByID(ctx, *in.PartnerID)
		if err != nil {
			return "", nil, err
		}
		if p == nil {
			return "", nil, errs.E(errs.NotFound, "no partner with id %d", *in.PartnerID)
		}
	}
	key, hash := auth.NewKey()
	k := &models.APIKey{Name: name, Role: in.Role, PartnerID: in.PartnerID, Hash: hash}
	if err := s.db.WithContext(ctx).Create(k).Error; err != nil {
		return "", nil, err
	}
	return key, k, nil
}

// RevokeAPIKey revokes a key (ADMIN); it is refused from its next request on.
// Revoking a revoked key changes nothing.
func (s *Service) RevokeAPIKey(ctx context.Context, id uint) (*models.APIKey, error) {
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return nil, err
	}
	var k models.APIKey
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		if err := lock(tx, &k, id, "API key"); err != nil {
			return err
		}
		if k.RevokedAt != nil {
			return nil
		}
		now := tx.NowFunc()
		k.RevokedAt = &now
		return tx.Model(&k).Update("revoked_at", now).Error
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
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
	var total int64
	if err := q.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return none, err
	}
	var rows []*models.Partner
	if err := database.Seek(q, "id", false, req.After != nil, nil, req.AfterID()).Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	return page.Build(rows, req, total, func(p *models.Partner) page.Cursor { return page.Cursor{ID: p.ID} }), nil
}

// APIKeys lists API keys, oldest first, optionally of one partner (ADMIN).
func (s *Service) APIKeys(ctx context.Context, partnerID *uint, includeRevoked bool, args page.Args) (page.Result[*models.APIKey], error) {
	var none page.Result[*models.APIKey]
	if err := requireRole(ctx, auth.RoleAdmin); err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Model(&models.APIKey{})
	if partnerID != nil {
		q = q.Where("partner_id = ?", *partnerID)
	}
	if !includeRevoked {
		q = q.Where("revoked_at IS NULL")
	}
	var total int64
	if err := q.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return none, err
	}
	var rows []*models.APIKey
	if err := database.Seek(q, "id", false, req.After != nil, nil, req.AfterID()).Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	return page.Build(rows, req, total, func(k *models.APIKey) page.Cursor { return page.Cursor{ID: k.ID} }), nil
}
