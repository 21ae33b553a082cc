// Package keys stores API keys and authenticates callers with them: issuing,
// listing and revoking keys, resolving a presented key to its principal, and
// ending whatever a revoked key still has open (sockets, event streams) on
// every process.
//
// Revocation bounds: a revoked key is refused at once on the process that
// revoked it, and within RecheckInterval (plus a look-up cached at most
// CacheTTL) on every other process; its open sessions end in the same bounds.
package keys

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/failing"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// AdminTokenName is the operator name recorded for changes made with ADMIN_TOKEN.
const AdminTokenName = "ADMIN_TOKEN"

// Defaults for Options.
const (
	DefaultCacheTTL        = time.Second
	DefaultRecheckInterval = time.Second
)

// Options tune the service.
type Options struct {
	// AdminToken, when set, is a bearer token that acts as ADMIN without a
	// stored key.
	AdminToken string
	// CacheTTL is how long a key look-up is reused.
	CacheTTL time.Duration
	// RecheckInterval is how often keys with open sessions are looked up again,
	// to end the sessions of keys revoked by another process.
	RecheckInterval time.Duration
	Logger          *slog.Logger
}

// Service stores and checks API keys.
type Service struct {
	db       *gorm.DB
	opts     Options
	cache    *cache
	Sessions *Sessions
}

// New returns a Service on db. Call Watch to end the sessions of keys that
// other processes revoke.
func New(db *gorm.DB, opts Options) *Service {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.RecheckInterval <= 0 {
		opts.RecheckInterval = DefaultRecheckInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{db: db, opts: opts, cache: newCache(opts.CacheTTL), Sessions: newSessions()}
}

// Authenticate resolves a presented key to its principal: UNAUTHENTICATED for
// an unknown or revoked key, SERVICE_UNAVAILABLE when the store cannot tell.
func (s *Service) Authenticate(ctx context.Context, key string) (auth.Principal, error) {
	if s.opts.AdminToken != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.AdminToken)) == 1 {
		return auth.Principal{Role: auth.RoleAdmin, KeyName: AdminTokenName}, nil
	}
	hash := auth.HashKey(key)
	if e := s.cache.byHash(hash); e != nil {
		return e.principal, e.err
	}
	k, err := s.lookUp(ctx, "hash = ?", hash)
	if err != nil {
		return auth.Principal{}, err
	}
	s.cache.put(hash, k)
	return principalOf(k)
}

// Check tells whether p's key is still valid: UNAUTHENTICATED once revoked.
// Every operation on a long-lived connection is checked with it.
func (s *Service) Check(ctx context.Context, p auth.Principal) error {
	if p.KeyID == 0 {
		return nil // ADMIN_TOKEN: valid for as long as the process runs with it
	}
	if e := s.cache.byID(p.KeyID); e != nil {
		return e.err
	}
	k, err := s.lookUp(ctx, "id = ?", p.KeyID)
	if err != nil {
		return err
	}
	s.cache.put(k.Hash, k)
	_, err = principalOf(k)
	return err
}

// lookUp reads the key matching the condition. A key that does not exist is
// UNAUTHENTICATED; a store that does not answer is SERVICE_UNAVAILABLE, never
// taken for a bad key (clients would ask for a new key instead of retrying).
func (s *Service) lookUp(ctx context.Context, cond string, arg any) (*models.APIKey, error) {
	var k models.APIKey
	err := s.db.WithContext(ctx).Where(cond, arg).Take(&k).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return nil, errs.E(errs.Unauthenticated, "unknown API key")
	case err != nil:
		s.opts.Logger.WarnContext(ctx, "key look-up failed", "err", err)
		return nil, errs.E(errs.ServiceUnavailable, "the service cannot check API keys right now; try again shortly")
	}
	return &k, nil
}

func principalOf(k *models.APIKey) (auth.Principal, error) {
	if k.RevokedAt != nil {
		return auth.Principal{}, errs.E(errs.Unauthenticated, "this API key has been revoked")
	}
	p := auth.Principal{Role: k.Role, KeyID: k.ID, KeyName: k.Name}
	if k.PartnerID != nil {
		p.PartnerID = *k.PartnerID
	}
	return p, nil
}

// NewKey is the input of Create.
type NewKey struct {
	Name      string
	Role      auth.Role
	PartnerID *uint
}

// Create creates an API key (ADMIN) and returns its secret, which is not
// stored and cannot be shown again.
func (s *Service) Create(ctx context.Context, in NewKey) (string, *models.APIKey, error) {
	if err := requireAdmin(ctx); err != nil {
		return "", nil, err
	}
	return s.Issue(ctx, in)
}

// Issue creates an API key without asking who is calling: for the server's
// own start-up (the demo data) and for Create once it has checked the role.
func (s *Service) Issue(ctx context.Context, in NewKey) (string, *models.APIKey, error) {
	name, err := input.Name("name", in.Name, 100)
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
		var n int64
		if err := s.db.WithContext(ctx).Model(&models.Partner{}).Where("id = ?", *in.PartnerID).Count(&n).Error; err != nil {
			return "", nil, err
		}
		if n == 0 {
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

// Revoke revokes a key (ADMIN): it is refused from now on, and whatever it has
// open on this process ends at once (on others within RecheckInterval).
// Revoking a revoked key changes nothing.
func (s *Service) Revoke(ctx context.Context, id uint) (*models.APIKey, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	var k models.APIKey
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		if err := database.Lock(tx, &k, id, "API key"); err != nil {
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
	s.revoked(k.ID)
	return &k, nil
}

// revoked forgets a revoked key and ends its sessions.
func (s *Service) revoked(id uint) {
	s.cache.drop(id)
	s.Sessions.End(id, errs.E(errs.Unauthenticated, "this API key has been revoked"))
}

// List lists API keys, oldest first, optionally of one partner (ADMIN).
func (s *Service) List(ctx context.Context, partnerID *uint, includeRevoked bool, args page.Args) (page.Result[*models.APIKey], error) {
	var none page.Result[*models.APIKey]
	if err := requireAdmin(ctx); err != nil {
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
	return database.PageByID(q, req, func(k *models.APIKey) uint { return k.ID })
}

func requireAdmin(ctx context.Context) error {
	_, err := auth.Require(ctx, auth.RoleAdmin)
	return err
}

// Watch looks up, every RecheckInterval until ctx ends, the keys that have
// sessions open or look-ups cached here, and ends whatever those that another
// process revoked still have open. One query serves every session.
func (s *Service) Watch(ctx context.Context) {
	tick := time.NewTicker(s.opts.RecheckInterval)
	defer tick.Stop()
	checks := failing.New(s.opts.Logger, "keys", "revocation check failed; retrying every interval", "revocation check works again")
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := s.recheck(ctx)
		if ctx.Err() != nil {
			return
		}
		checks.Note(err)
	}
}

func (s *Service) recheck(ctx context.Context) error {
	ids := s.Sessions.keyIDs()
	ids = append(ids, s.cache.ids()...)
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		var revoked []uint
		err := s.db.WithContext(ctx).Model(&models.APIKey{}).
			Where("id IN ? AND revoked_at IS NOT NULL", ids[:n]).Pluck("id", &revoked).Error
		if err != nil {
			return err
		}
		for _, id := range revoked {
			s.revoked(id)
		}
		ids = ids[n:]
	}
	return nil
}
