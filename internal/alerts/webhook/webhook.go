// Package webhook delivers alerts to the HTTP endpoints partners register,
// signed per the Standard Webhooks specification, at least once, with
// retries and a log of every attempt.
//
// A delivery (one alert for one endpoint) is queued in the transaction that
// numbers the alert (Enqueue, called by the outbox's sequencer), so that no
// alert is lost or queued twice, whichever process numbers it. Every process
// runs a dispatcher that leases due deliveries (a lease on the row, taken in a
// short transaction of its own: the write path holds no lock a delivery
// needs), attempts them, and records each attempt; a process killed
// mid-attempt leaves its lease to expire, and another process retries.
package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/input"
	"github.com/cloudreseller/credit/internal/page"
)

// Options tune delivery.
type Options struct {
	// AllowInsecure accepts http endpoints (WEBHOOK_ALLOW_INSECURE).
	AllowInsecure bool
	// AllowPrivate accepts endpoints on loopback, private and link-local
	// addresses (WEBHOOK_ALLOW_PRIVATE; the tests receive on loopback).
	AllowPrivate bool
	// Retries are the pauses before each retry; after the last, a delivery
	// fails (dead letter). DefaultRetries when nil.
	Retries []time.Duration
	// Timeout bounds one attempt (10 s).
	Timeout time.Duration
	// Poll is how often a dispatcher looks for due deliveries (1 s); it is
	// woken at once when alerts are numbered.
	Poll time.Duration
	// Lease is how long an attempt holds its delivery (three timeouts): a
	// process killed mid-attempt leaves it to another after that.
	Lease time.Duration
}

// DefaultRetries retry after 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, then every
// 12 h: 12 attempts over about 3 days (72 h), with ±20 % jitter.
var DefaultRetries = []time.Duration{
	10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour,
}

// Service manages endpoints and delivers to them.
type Service struct {
	db     *gorm.DB
	opts   Options
	client *http.Client
	log    *slog.Logger
	wake   chan struct{}
}

// New returns the webhook service on db.
func New(db *gorm.DB, opts Options, log *slog.Logger) *Service {
	if opts.Retries == nil {
		opts.Retries = DefaultRetries
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = 3 * opts.Timeout
	}
	if log == nil {
		log = slog.Default()
	}
	transport := &http.Transport{DialContext: guardedDialer(opts).DialContext, MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: opts.Timeout}
	client := &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// Redirects are not followed: a receiver answers where it was registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Service{db: db, opts: opts, client: client, log: log, wake: make(chan struct{}, 1)}
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
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

func (r endpointRow) endpoint() *Endpoint {
	e := &Endpoint{ID: r.ID, PartnerID: r.PartnerID, URL: r.URL, Description: r.Description, Secret: r.Secret,
		PreviousSecret: r.PreviousSecret, PreviousSecretUntil: r.PreviousSecretUntil, DisabledAt: r.DisabledAt,
		DisabledReason: r.DisabledReason, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
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
	if row.FilterKinds, row.FilterCustomers, err = encodeFilter(in.Kinds, in.CustomerIDs); err != nil {
		return nil, err
	}
	if err := s.db.WithContext(ctx).Table("webhook_endpoints").Create(&row).Error; err != nil {
		return nil, err
	}
	return row.endpoint(), nil
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
	var e *endpointRow
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) (err error) {
		if e, err = s.find(ctx, tx, id); err != nil {
			return err
		}
		if _, err := database.Exec(tx, "DELETE FROM webhook_deliveries WHERE endpoint_id = ? AND status = ?", id, StatusPending); err != nil {
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

// Delivery is one alert for one endpoint, with every attempt.
type Delivery struct {
	ID            uint
	EndpointID    uint
	AlertID       uint
	Status        string
	Attempts      []*Attempt `gorm:"-"`
	NextAttemptAt *time.Time
	DeliveredAt   *time.Time
	LastError     *string
	CreatedAt     time.Time
}

// WebhookID is the delivery's webhook-id header.
func (d *Delivery) WebhookID() string { return MessageID(d.EndpointID, d.AlertID) }

// Attempt is one try at a delivery.
type Attempt struct {
	AttemptedAt time.Time
	HTTPStatus  *int
	LatencyMs   int
	Response    *string
	Error       *string
}

// Deliveries lists an endpoint's deliveries, newest first, optionally of one
// status, with their attempts (oldest first).
func (s *Service) Deliveries(ctx context.Context, endpointID uint, status *string, args page.Args) (page.Result[*Delivery], error) {
	var none page.Result[*Delivery]
	if _, err := s.find(ctx, s.db.WithContext(ctx), endpointID); err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := s.db.WithContext(ctx).Table("webhook_deliveries").Where("endpoint_id = ?", endpointID)
	if status != nil {
		q = q.Where("status = ?", *status)
	}
	total, err := database.CountIf(req.Count, q)
	if err != nil {
		return none, err
	}
	var rows []*Delivery
	q = database.Seek(q, "id", true, req.After != nil, nil, req.AfterID())
	if err := q.Select("id, endpoint_id, alert_id, status, next_attempt_at, delivered_at, last_error, created_at").
		Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	res := page.Build(rows, req, total, func(d *Delivery) page.Cursor { return page.Cursor{ID: d.ID} })
	if len(res.Items) == 0 {
		return res, nil
	}
	ids := make([]uint, len(res.Items))
	byID := map[uint]*Delivery{}
	for i, d := range res.Items {
		ids[i], byID[d.ID] = d.ID, d
		d.Attempts = []*Attempt{}
	}
	var attempts []struct {
		DeliveryID uint
		Attempt
	}
	if err := s.db.WithContext(ctx).Table("webhook_attempts").Where("delivery_id IN ?", ids).Order("id").
		Select("delivery_id, attempted_at, http_status, latency_ms, response, error").Find(&attempts).Error; err != nil {
		return none, err
	}
	for i := range attempts {
		a := attempts[i].Attempt
		byID[attempts[i].DeliveryID].Attempts = append(byID[attempts[i].DeliveryID].Attempts, &a)
	}
	return res, nil
}

// Resend queues a delivery again, whatever its state (a delivered one too):
// it is attempted at once, with the same webhook-id.
func (s *Service) Resend(ctx context.Context, deliveryID uint) (*Delivery, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	q := s.db.WithContext(ctx).Table("webhook_deliveries").Where("id = ?", deliveryID)
	if p.Role == auth.RolePartner {
		q = q.Where("partner_id = ?", p.PartnerID)
	}
	var rows []*Delivery
	if err := q.Select("id, endpoint_id, alert_id, status, next_attempt_at, delivered_at, last_error, created_at").Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errs.E(errs.NotFound, "no webhook delivery with id %d", deliveryID)
	}
	now := s.db.NowFunc()
	if _, err := database.Exec(s.db.WithContext(ctx), "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, lease_until = NULL WHERE id = ?",
		StatusPending, now, deliveryID); err != nil {
		return nil, err
	}
	d := rows[0]
	d.Status, d.NextAttemptAt, d.Attempts = StatusPending, &now, []*Attempt{}
	signal(s.wake)
	return d, nil
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
		now := tx.NowFunc()
		_, err = database.InsertRows(tx, "webhook_deliveries",
			[]string{"endpoint_id", "partner_id", "alert_id", "status", "attempts", "next_attempt_at", "created_at"},
			len(ids), func(i int) []any { return []any{e.ID, e.PartnerID, ids[i], StatusPending, 0, now, now} })
		queued = len(ids)
		return err
	})
	if err == nil && queued > 0 {
		signal(s.wake)
	}
	return queued, err
}

// SetEnabled disables an endpoint (nothing is sent to it; deliveries queued
// meanwhile fail) or enables it again.
func (s *Service) SetEnabled(ctx context.Context, id uint, enabled bool) (*Endpoint, error) {
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
		if r.FilterKinds, r.FilterCustomers, err = encodeFilter(in.Filter.Kinds, in.Filter.CustomerIDs); err != nil {
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

// encodeFilter writes a filter as stored: comma-separated kinds and customer
// ids; nil takes every one.
func encodeFilter(kinds []rules.Kind, customers []uint) (*string, *string, error) {
	var k, c *string
	if kinds != nil {
		parts := make([]string, len(kinds))
		for i, kind := range kinds {
			parts[i] = string(kind)
		}
		joined := strings.Join(parts, ",")
		k = &joined
	}
	if customers != nil {
		if len(customers) > 100 {
			return nil, nil, errs.E(errs.BadUserInput, "filter.customerIds takes at most 100 ids")
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
