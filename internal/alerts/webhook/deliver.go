package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/failing"
	"github.com/cloudreseller/credit/models"
)

// Delivery states.
const (
	StatusPending   = "PENDING"
	StatusDelivered = "DELIVERED"
	StatusFailed    = "FAILED"
)

// Enqueue queues a delivery of each alert to each endpoint of its partner
// that wants it, in tx: the transaction that numbers the alerts. One read of
// endpoints per pass; nothing when no partner of the alerts has one.
func (s *Service) Enqueue(tx *gorm.DB, alerts []*models.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	partners := map[uint]bool{}
	for _, a := range alerts {
		partners[a.PartnerID] = true
	}
	ids := make([]uint, 0, len(partners))
	for id := range partners {
		ids = append(ids, id)
	}
	var rows []endpointRow
	if err := tx.Table("webhook_endpoints").Where("partner_id IN ? AND disabled_at IS NULL", ids).Find(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	now := tx.NowFunc()
	type delivery struct{ endpoint, partner, alert uint }
	var queued []delivery
	for _, r := range rows {
		e := r.endpoint()
		for _, a := range alerts {
			if a.PartnerID == e.PartnerID && e.wants(a.Kind, a.CustomerID) {
				queued = append(queued, delivery{e.ID, e.PartnerID, a.ID})
			}
		}
	}
	if len(queued) == 0 {
		return nil
	}
	_, err := database.InsertRows(tx, "webhook_deliveries",
		[]string{"endpoint_id", "partner_id", "alert_id", "status", "attempts", "next_attempt_at", "created_at"},
		len(queued), func(i int) []any {
			d := queued[i]
			return []any{d.endpoint, d.partner, d.alert, StatusPending, 0, now, now}
		})
	return err
}

// Wake tells the dispatcher that deliveries were queued and committed.
func (s *Service) Wake() { signal(s.wake) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run dispatches due deliveries until ctx ends; deliveries in flight finish
// (bounded by the attempt timeout).
func (s *Service) Run(ctx context.Context) {
	tick := time.NewTicker(s.opts.Poll)
	defer tick.Stop()
	dispatches := failing.New(s.log, "webhooks", "dispatch failed; retrying", "dispatch works again")
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		for {
			n, err := s.dispatch(ctx)
			if ctx.Err() != nil {
				return
			}
			dispatches.Note(err)
			if err != nil || n < dispatchBatch {
				break
			}
		}
	}
}

// dispatchBatch is the most deliveries one lease takes.
const dispatchBatch = 50

// leased is a delivery this process holds, with what it needs to send it.
type leased struct {
	ID, EndpointID, AlertID uint
	Attempts                int
}

// dispatch leases due deliveries and attempts them, each endpoint's in turn
// and the endpoints at once (a slow endpoint delays only itself).
func (s *Service) dispatch(ctx context.Context) (int, error) {
	batch, err := s.lease(ctx)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	byEndpoint := map[uint][]leased{}
	for _, d := range batch {
		byEndpoint[d.EndpointID] = append(byEndpoint[d.EndpointID], d)
	}
	var wg sync.WaitGroup
	for endpoint, ds := range byEndpoint {
		wg.Go(func() {
			for _, d := range ds {
				if err := s.attempt(context.WithoutCancel(ctx), endpoint, d); err != nil {
					s.log.Warn("webhooks: recording an attempt failed", "delivery", d.ID, "err", err)
				}
			}
		})
	}
	wg.Wait()
	return len(batch), nil
}

// lease takes due deliveries for this process until now + Lease, in a short
// transaction that skips rows another process is leasing.
func (s *Service) lease(ctx context.Context) ([]leased, error) {
	var out []leased
	err := database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		out = nil
		now := tx.NowFunc()
		skip := ""
		if database.IsMySQL(tx) {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		if err := tx.Raw("SELECT id, endpoint_id, alert_id, attempts FROM webhook_deliveries WHERE status = ? AND next_attempt_at <= ?"+
			" AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?"+skip,
			StatusPending, now, now, dispatchBatch).Scan(&out).Error; err != nil || len(out) == 0 {
			return err
		}
		ids := make([]uint, len(out))
		for i, d := range out {
			ids[i] = d.ID
		}
		return tx.Exec("UPDATE webhook_deliveries SET lease_until = ? WHERE id IN ?", now.Add(s.opts.Lease), ids).Error
	})
	return out, err
}

// Payload is what an endpoint receives: the alert's fields as the GraphQL
// Alert has them, with its customer's and partner's ids.
type Payload struct {
	Type string       `json:"type"`
	Data PayloadAlert `json:"data"`
}

// PayloadAlert is an alert in a payload.
type PayloadAlert struct {
	ID             string         `json:"id"`
	Kind           string         `json:"kind"`
	Cause          string         `json:"cause"`
	PartnerID      string         `json:"partnerId"`
	CustomerID     string         `json:"customerId"`
	Threshold      int            `json:"threshold"`
	Level          *string        `json:"level"`
	RecoveredKind  *string        `json:"recoveredKind"`
	Status         *string        `json:"status"`
	PreviousStatus *string        `json:"previousStatus"`
	UsagePercent   float64        `json:"usagePercent"`
	Used           string         `json:"used"`
	Credit         string         `json:"credit"`
	Available      string         `json:"available"`
	Forecast       map[string]any `json:"forecast"`
	CreatedAt      string         `json:"createdAt"`
}

// payloadOf is the JSON body for an alert.
func payloadOf(a *models.Alert) ([]byte, error) {
	p := PayloadAlert{
		ID: fmt.Sprint(a.ID), Kind: string(a.Kind), Cause: string(a.Cause), PartnerID: fmt.Sprint(a.PartnerID),
		CustomerID: fmt.Sprint(a.CustomerID), Threshold: a.Threshold, UsagePercent: credit.PercentFromBasisPoints(a.UsageBasisPoints),
		Used: a.Used.String(), Credit: a.Credit.String(), Available: a.Available.String(), CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339Nano),
	}
	if a.Level != nil {
		l := a.Level.String()
		p.Level = &l
	}
	if a.RecoveredKind != nil {
		k := string(*a.RecoveredKind)
		p.RecoveredKind = &k
	}
	if a.Status != nil {
		st := string(*a.Status)
		p.Status = &st
	}
	if a.PreviousStatus != nil {
		st := string(*a.PreviousStatus)
		p.PreviousStatus = &st
	}
	if a.DaysLeft != nil || a.BurnRatePerDay != nil {
		p.Forecast = map[string]any{"basedOnHours": a.BasedOnHours}
		if a.BurnRatePerDay != nil {
			p.Forecast["burnRatePerDay"] = a.BurnRatePerDay.String()
		}
		if a.DaysLeft != nil {
			p.Forecast["daysLeft"] = float64(*a.DaysLeft) / 100
		}
		if a.DepletesAt != nil {
			p.Forecast["depletesAt"] = a.DepletesAt.UTC().Format(time.RFC3339Nano)
		}
	}
	return json.Marshal(Payload{Type: "alert." + strings.ToLower(string(a.Kind)), Data: p})
}

// MessageID is the webhook-id of an alert for an endpoint: the same on every
// attempt, resend and replay, so that receivers can drop repeats.
func MessageID(endpointID, alertID uint) string {
	return fmt.Sprintf("msg_e%d_a%d", endpointID, alertID)
}

// sign returns the webhook-signature header: one "v1,<signature>" per secret
// in force (two while a rotated secret overlaps).
func sign(e *endpointRow, id string, at time.Time, body []byte) (string, error) {
	secrets := []string{e.Secret}
	if e.PreviousSecret != nil && e.PreviousSecretUntil != nil && at.Before(*e.PreviousSecretUntil) {
		secrets = append(secrets, *e.PreviousSecret)
	}
	var sigs []string
	for _, secret := range secrets {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			return "", err
		}
		sig, err := wh.Sign(id, at, body)
		if err != nil {
			return "", err
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}

// maxResponse bounds what is read and kept of a response.
const maxResponse = 1024

// attempt sends one delivery and records the attempt and its outcome.
func (s *Service) attempt(ctx context.Context, endpointID uint, d leased) error {
	db := s.db.WithContext(ctx)
	var endpoints []endpointRow
	if err := db.Table("webhook_endpoints").Where("id = ?", endpointID).Find(&endpoints).Error; err != nil {
		return err
	}
	var alert models.Alert
	if err := db.Take(&alert, d.AlertID).Error; err != nil {
		return err
	}
	if len(endpoints) == 0 || endpoints[0].DisabledAt != nil {
		return s.finish(ctx, d, StatusFailed, "the endpoint was deleted or disabled", nil, 0, "", "")
	}
	e := &endpoints[0]
	body, err := payloadOf(&alert)
	if err != nil {
		return err
	}
	now := time.Now()
	id := MessageID(endpointID, d.AlertID)
	signature, err := sign(e, id, now, body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return s.finish(ctx, d, StatusFailed, "the endpoint's URL is not usable", nil, 0, "", "")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "credit-webhooks/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, id)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, signature)
	start := time.Now()
	res, err := s.client.Do(req)
	latency := time.Since(start)
	if err != nil {
		msg := "connection failed or timed out"
		if errors.Is(err, errForbiddenAddress) {
			msg = errForbiddenAddress.Error()
		}
		return s.retryOrFail(ctx, d, nil, latency, "", msg)
	}
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	res.Body.Close()
	status := res.StatusCode
	switch {
	case status >= 200 && status < 300:
		return s.finish(ctx, d, StatusDelivered, "", &status, latency, string(excerpt), "")
	case status == http.StatusGone:
		if err := s.disable(ctx, endpointID, "the endpoint answered 410 Gone"); err != nil {
			return err
		}
		return s.finish(ctx, d, StatusFailed, "410 Gone: the endpoint is disabled", &status, latency, string(excerpt), "")
	}
	return s.retryOrFail(ctx, d, &status, latency, string(excerpt), fmt.Sprintf("HTTP %d", status))
}

// retryOrFail records a failed attempt and schedules the next, or marks the
// delivery failed after the last.
func (s *Service) retryOrFail(ctx context.Context, d leased, status *int, latency time.Duration, excerpt, msg string) error {
	if d.Attempts >= len(s.opts.Retries) {
		return s.finish(ctx, d, StatusFailed, msg, status, latency, excerpt, msg)
	}
	pause := s.opts.Retries[d.Attempts]
	pause += time.Duration((rand.Float64()*0.4 - 0.2) * float64(pause)) // ±20 %
	return s.record(ctx, d, StatusPending, msg, status, latency, excerpt, msg, time.Now().Add(pause))
}

func (s *Service) finish(ctx context.Context, d leased, state, lastErr string, status *int, latency time.Duration, excerpt, attemptErr string) error {
	return s.record(ctx, d, state, lastErr, status, latency, excerpt, attemptErr, time.Time{})
}

// record writes an attempt and the delivery's new state in one transaction.
func (s *Service) record(ctx context.Context, d leased, state, lastErr string, status *int, latency time.Duration, excerpt, attemptErr string, next time.Time) error {
	return database.Transact(ctx, s.db, func(tx *gorm.DB) error {
		now := tx.NowFunc()
		var errText *string
		if attemptErr != "" {
			errText = &attemptErr
		}
		var resp *string
		if excerpt != "" {
			resp = &excerpt
		}
		if _, err := database.Exec(tx, "INSERT INTO webhook_attempts (delivery_id, attempted_at, http_status, latency_ms, response, error) VALUES (?, ?, ?, ?, ?, ?)",
			d.ID, now, status, latency.Milliseconds(), resp, errText); err != nil {
			return err
		}
		var nextAt, deliveredAt *time.Time
		if !next.IsZero() {
			nextAt = &next
		}
		if state == StatusDelivered {
			deliveredAt = &now
		}
		var last *string
		if lastErr != "" {
			last = &lastErr
		}
		if _, err := database.Exec(tx, "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, last_error = ?, delivered_at = COALESCE(?, delivered_at) WHERE id = ?",
			state, nextAt, last, deliveredAt, d.ID); err != nil {
			return err
		}
		return noteOutcome(tx, d.EndpointID, state == StatusDelivered, now)
	})
}

// FailingDays is how long an endpoint may fail every attempt before it is
// disabled.
const FailingDays = 5

// noteOutcome keeps when an endpoint started failing (cleared by a success),
// and disables it once it has failed for FailingDays.
func noteOutcome(tx *gorm.DB, endpointID uint, delivered bool, now time.Time) error {
	if delivered {
		_, err := database.Exec(tx, "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL", endpointID)
		return err
	}
	if _, err := database.Exec(tx, "UPDATE webhook_endpoints SET failing_since = ? WHERE id = ? AND failing_since IS NULL", now, endpointID); err != nil {
		return err
	}
	_, err := database.Exec(tx, "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ? AND disabled_at IS NULL AND failing_since <= ?",
		now, fmt.Sprintf("every attempt failed for %d days", FailingDays), endpointID, now.Add(-FailingDays*24*time.Hour))
	return err
}

// disable turns an endpoint off, saying why.
func (s *Service) disable(ctx context.Context, id uint, reason string) error {
	_, err := database.Exec(s.db.WithContext(ctx), "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ? AND disabled_at IS NULL",
		s.db.NowFunc(), reason, id)
	return err
}
