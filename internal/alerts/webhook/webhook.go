// Package webhook is the delivery channel of the HTTP endpoints partners
// register: alerts posted as JSON, signed per the Standard Webhooks
// specification. Queueing, leases, retries and the log of attempts are the
// delivery package's, shared with every channel.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/models"
)

// MaxEndpoints bounds the endpoints of one partner, disabled ones
// included: every alert of a partner is queued for each of its endpoints, so
// the bound is also what one alert can cost the store and the dispatcher.
const MaxEndpoints = 200

// Options tune delivery.
type Options struct {
	// AllowInsecure accepts http endpoints (WEBHOOK_ALLOW_INSECURE).
	AllowInsecure bool
	// AllowPrivate accepts endpoints on addresses that are not public:
	// loopback, private, link-local and the other special-purpose ranges
	// (WEBHOOK_ALLOW_PRIVATE; the tests receive on loopback).
	AllowPrivate bool
	// Timeout bounds one attempt (10 s).
	Timeout time.Duration
}

// Service manages endpoints and delivers to them; it is a delivery.Channel.
type Service struct {
	db         *gorm.DB
	deliveries *delivery.Service
	opts       Options
	client     *http.Client
	cache      endpointCache
	payloads   payloadCache
}

// New returns the webhook channel on db, whose deliveries go through
// deliveries (the caller Adds it there).
func New(db *gorm.DB, deliveries *delivery.Service, opts Options) *Service {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	// Connections are kept for reuse: endpoints of one host (a partner's, or a
	// receiving service's) share them, and a new one per attempt cost more than
	// the attempt.
	transport := &http.Transport{DialContext: guardedDialer(opts).DialContext, MaxIdleConns: 256, MaxIdleConnsPerHost: 64,
		IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: opts.Timeout}
	client := &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// Redirects are not followed: a receiver answers where it was registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Service{db: db, deliveries: deliveries, opts: opts, client: client}
}

// Endpoint is a partner's webhook endpoint.
type Endpoint struct {
	ID                  uint
	PartnerID           uint
	URL                 string
	Description         *string
	Kinds               []rules.Kind // nil: every kind
	CustomerIDs         []uint       // nil: every customer
	Secret              string
	PreviousSecret      *string
	PreviousSecretUntil *time.Time
	DisabledAt          *time.Time
	DisabledReason      *string
	FailingSince        *time.Time // every attempt since has failed
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// endpointRow is an endpoint as stored.
type endpointRow struct {
	ID                  uint
	PartnerID           uint
	URL                 string
	Description         *string
	FilterKinds         *string
	FilterCustomers     *string
	Secret              string
	PreviousSecret      *string
	PreviousSecretUntil *time.Time
	DisabledAt          *time.Time
	DisabledReason      *string
	FailingSince        *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

func (r endpointRow) endpoint() *Endpoint {
	e := &Endpoint{ID: r.ID, PartnerID: r.PartnerID, URL: r.URL, Description: r.Description, Secret: r.Secret,
		PreviousSecret: r.PreviousSecret, PreviousSecretUntil: r.PreviousSecretUntil, DisabledAt: r.DisabledAt,
		DisabledReason: r.DisabledReason, FailingSince: r.FailingSince, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.FilterKinds != nil {
		e.Kinds = []rules.Kind{}
		for k := range strings.SplitSeq(*r.FilterKinds, ",") {
			if k != "" {
				e.Kinds = append(e.Kinds, rules.Kind(k))
			}
		}
	}
	if r.FilterCustomers != nil {
		e.CustomerIDs = []uint{}
		for c := range strings.SplitSeq(*r.FilterCustomers, ",") {
			if n, err := strconv.ParseUint(c, 10, 64); err == nil {
				e.CustomerIDs = append(e.CustomerIDs, uint(n))
			}
		}
	}
	return e
}

// wants tells whether the endpoint takes an alert of the kind and customer.
func (e *Endpoint) wants(kind rules.Kind, customerID uint) bool {
	return e.DisabledAt == nil && (e.Kinds == nil || slices.Contains(e.Kinds, kind)) &&
		(e.CustomerIDs == nil || slices.Contains(e.CustomerIDs, customerID))
}

// NewEndpoint is an endpoint to register.
type NewEndpoint struct {
	URL         string
	Description *string
	Kinds       []rules.Kind
	CustomerIDs []uint
}

// newSecret makes a signing secret: 32 random bytes, in the Standard
// Webhooks form ("whsec_" and base64).
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// Create registers an endpoint and returns it with its signing secret, which
// is shown only now.
func (s *Service) Create(ctx context.Context, partnerID *uint, in NewEndpoint) (*Endpoint, error) {
	pid, err := accounts.ManagedPartner(ctx, s.db, partnerID)
	if err != nil {
		return nil, err
	}
	if _, err := checkURL(ctx, in.URL, s.opts); err != nil {
		return nil, err
	}
	if in.Description, err = input.Optional("description", in.Description, 500); err != nil {
		return nil, err
	}
	now := s.db.NowFunc()
	row := endpointRow{PartnerID: pid, URL: in.URL, Description: in.Description, Secret: newSecret(), CreatedAt: now, UpdatedAt: now}
	if row.FilterKinds, row.FilterCustomers, err = storedFilter(s.db.WithContext(ctx), pid, in.Kinds, in.CustomerIDs); err != nil {
		return nil, err
	}
	err = database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		row.ID = 0 // a run again inserts afresh
		if err := roomFor(tx, pid); err != nil {
			return err
		}
		return tx.Table("webhook_endpoints").Create(&row).Error
	})
	if err != nil {
		return nil, err
	}
	return row.endpoint(), nil
}

// roomFor refuses a new endpoint of a partner that holds MaxEndpoints. It
// counts with the partner's row locked, so that registrations at once take
// turns (inserting an endpoint takes that row's shared lock for its foreign
// key anyway).
func roomFor(tx *gorm.DB, partnerID uint) error {
	var p models.Partner
	if err := database.Lock(tx, &p, partnerID, "partner"); err != nil {
		return err
	}
	var n int64
	if err := tx.Table("webhook_endpoints").Where("partner_id = ?", partnerID).Count(&n).Error; err != nil {
		return err
	}
	if n >= MaxEndpoints {
		return errs.E(errs.BadUserInput, "a partner holds at most %d webhook endpoints: delete one first", MaxEndpoints)
	}
	return nil
}

// List lists the partner's endpoints (ADMIN: every one, or one partner's).
func (s *Service) List(ctx context.Context, partnerID *uint) ([]*Endpoint, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	q := s.db.WithContext(ctx).Table("webhook_endpoints").Order("id")
	switch {
	case p.Role == auth.RolePartner:
		q = q.Where("partner_id = ?", p.PartnerID)
	case partnerID != nil:
		q = q.Where("partner_id = ?", *partnerID)
	}
	var rows []endpointRow
	if err := q.Limit(1000).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]*Endpoint, len(rows))
	for i, r := range rows {
		out[i] = r.endpoint()
	}
	return out, nil
}

// find returns an endpoint the caller may manage (NOT_FOUND otherwise).
func (s *Service) find(ctx context.Context, db *gorm.DB, id uint) (*endpointRow, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	q := db.Table("webhook_endpoints").Where("id = ?", id)
	if p.Role == auth.RolePartner {
		q = q.Where("partner_id = ?", p.PartnerID)
	}
	var rows []endpointRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errs.E(errs.NotFound, "no webhook endpoint with id %d", id)
	}
	return &rows[0], nil
}

// Delete removes an endpoint; its queued deliveries are dropped.
func (s *Service) Delete(ctx context.Context, id uint) (*Endpoint, error) {
	defer s.cache.forget(id)
	var e *endpointRow
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) (err error) {
		if e, err = s.find(ctx, tx, id); err != nil {
			return err
		}
		if _, err := database.Exec(tx, "DELETE FROM alert_deliveries WHERE channel = ? AND target_id = ? AND status = ?", Channel, id, delivery.StatusPending); err != nil {
			return err
		}
		if _, err := database.Exec(tx, "DELETE FROM delivery_lags WHERE channel = ? AND target_id = ?", Channel, id); err != nil {
			return err
		}
		_, err = database.Exec(tx, "DELETE FROM webhook_endpoints WHERE id = ?", id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return e.endpoint(), nil
}

// RotationOverlap is how long a rotated secret still signs deliveries.
const RotationOverlap = 24 * time.Hour

// Rotate gives an endpoint a new secret (returned, shown only now); the old
// one keeps signing, beside the new, for RotationOverlap.
func (s *Service) Rotate(ctx context.Context, id uint) (*Endpoint, error) {
	defer s.cache.forget(id)
	var e *endpointRow
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) (err error) {
		if e, err = s.find(ctx, tx, id); err != nil {
			return err
		}
		now := tx.NowFunc()
		until := now.Add(RotationOverlap)
		old := e.Secret
		e.PreviousSecret, e.PreviousSecretUntil, e.Secret, e.UpdatedAt = &old, &until, newSecret(), now
		_, err = database.Exec(tx, "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_secret_until = ?, updated_at = ? WHERE id = ?",
			e.Secret, e.PreviousSecret, e.PreviousSecretUntil, now, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return e.endpoint(), nil
}

// Deliveries lists deliveries to webhooks, newest first, with their attempts:
// one endpoint's (NOT_FOUND when the caller may not manage it), or every
// endpoint's of the caller (ADMIN: of every partner, or of partnerID);
// optionally in one state (FAILED: the dead letters).
func (s *Service) Deliveries(ctx context.Context, endpointID, partnerID *uint, status *string, from, to *time.Time, args page.Args) (page.Result[*delivery.Delivery], error) {
	f := delivery.Filter{Channel: Channel, TargetID: endpointID, PartnerID: partnerID, Status: status, From: from, To: to}
	if endpointID != nil {
		if _, err := s.find(ctx, s.db.WithContext(ctx), *endpointID); err != nil {
			return page.Result[*delivery.Delivery]{}, err
		}
	}
	return s.deliveries.List(ctx, f, args)
}

// Resend queues a webhook delivery again, whatever its state (a delivered one
// too): it is attempted at once, with the same webhook-id.
func (s *Service) Resend(ctx context.Context, id uint) (*delivery.Delivery, error) {
	return s.deliveries.Resend(ctx, Channel, id)
}

// MaxReplay bounds the alerts one replay queues (replay again after the last).
const MaxReplay = 10000

// Replay queues a delivery to the endpoint of every alert after afterAlertID
// that its filter takes (at most MaxReplay, oldest first); it returns how
// many it queued.
func (s *Service) Replay(ctx context.Context, endpointID, afterAlertID uint) (int, error) {
	queued := 0
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		r, err := s.find(ctx, tx, endpointID)
		if err != nil {
			return err
		}
		e := r.endpoint()
		q := tx.Table("alerts").Where("partner_id = ? AND id > ?", e.PartnerID, afterAlertID)
		if e.Kinds != nil {
			q = q.Where("kind IN ?", e.Kinds)
		}
		if e.CustomerIDs != nil {
			q = q.Where("customer_id IN ?", e.CustomerIDs)
		}
		var ids []uint
		if err := q.Order("id").Limit(MaxReplay).Pluck("id", &ids).Error; err != nil || len(ids) == 0 {
			return err
		}
		routes := make([]delivery.Route, len(ids))
		for i, id := range ids {
			routes[i] = delivery.Route{Target: e.ID, Partner: e.PartnerID, Alert: id}
		}
		queued = len(ids)
		return delivery.Queue(tx, Channel, routes)
	})
	if err == nil && queued > 0 {
		s.deliveries.Wake()
	}
	return queued, err
}

// SetEnabled disables an endpoint (nothing is sent to it; deliveries queued
// meanwhile fail) or enables it again.
func (s *Service) SetEnabled(ctx context.Context, id uint, enabled bool) (*Endpoint, error) {
	defer s.cache.forget(id)
	r, err := s.find(ctx, s.db.WithContext(ctx), id)
	if err != nil {
		return nil, err
	}
	now := s.db.NowFunc()
	if enabled {
		r.DisabledAt, r.DisabledReason = nil, nil
	} else if r.DisabledAt == nil {
		reason := "disabled by its partner"
		r.DisabledAt, r.DisabledReason = &now, &reason
	}
	if _, err := database.Exec(s.db.WithContext(ctx), "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ?, updated_at = ? WHERE id = ?",
		r.DisabledAt, r.DisabledReason, now, id); err != nil {
		return nil, err
	}
	return r.endpoint(), nil
}

// EndpointChange changes an endpoint: fields left nil stay as they are; a
// filter replaces the endpoint's whole filter.
type EndpointChange struct {
	URL         *string
	Description *string
	Filter      *Filter
}

// Filter is which alerts an endpoint takes: nil fields take every one.
type Filter struct {
	Kinds       []rules.Kind
	CustomerIDs []uint
}

// Update changes an endpoint's URL (checked as at registration), description
// or filter; deliveries already queued keep going to it.
func (s *Service) Update(ctx context.Context, id uint, in EndpointChange) (*Endpoint, error) {
	defer s.cache.forget(id)
	r, err := s.find(ctx, s.db.WithContext(ctx), id)
	if err != nil {
		return nil, err
	}
	if in.URL != nil {
		if _, err := checkURL(ctx, *in.URL, s.opts); err != nil {
			return nil, err
		}
		r.URL = *in.URL
	}
	if in.Description != nil {
		if r.Description, err = input.Optional("description", in.Description, 500); err != nil {
			return nil, err
		}
	}
	if in.Filter != nil {
		if r.FilterKinds, r.FilterCustomers, err = storedFilter(s.db.WithContext(ctx), r.PartnerID, in.Filter.Kinds, in.Filter.CustomerIDs); err != nil {
			return nil, err
		}
	}
	r.UpdatedAt = s.db.NowFunc()
	if _, err := database.Exec(s.db.WithContext(ctx), "UPDATE webhook_endpoints SET url = ?, description = ?, filter_kinds = ?, filter_customers = ?, updated_at = ? WHERE id = ?",
		r.URL, r.Description, r.FilterKinds, r.FilterCustomers, r.UpdatedAt, id); err != nil {
		return nil, err
	}
	return r.endpoint(), nil
}

// MaxFilterCustomers bounds the customers of an endpoint's filter.
const MaxFilterCustomers = 100

// storedFilter checks a filter of the partner's endpoint and returns it as
// stored: comma-separated kinds and customer ids, each once (a thousand of
// one kind overflowed the column); nil takes every one. Its customers must be
// the partner's: another partner's look like missing ones.
func storedFilter(db *gorm.DB, partnerID uint, kinds []rules.Kind, customers []uint) (*string, *string, error) {
	var k, c *string
	if kinds != nil {
		parts := make([]string, 0, len(kinds))
		for _, kind := range kinds {
			if !slices.Contains(parts, string(kind)) {
				parts = append(parts, string(kind))
			}
		}
		joined := strings.Join(parts, ",")
		k = &joined
	}
	if customers != nil {
		customers = slices.Compact(slices.Sorted(slices.Values(customers)))
		if len(customers) > MaxFilterCustomers {
			return nil, nil, errs.E(errs.BadUserInput, "filter.customerIds takes at most %d ids", MaxFilterCustomers)
		}
		id, foreign, err := accounts.ForeignCustomer(db, partnerID, customers)
		if err != nil {
			return nil, nil, err
		}
		if foreign {
			return nil, nil, errs.E(errs.BadUserInput, "filter.customerIds: no customer with id %d", id)
		}
		parts := make([]string, len(customers))
		for i, id := range customers {
			parts[i] = strconv.FormatUint(uint64(id), 10)
		}
		joined := strings.Join(parts, ",")
		c = &joined
	}
	return k, c, nil
}
