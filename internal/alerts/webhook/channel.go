package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Channel is the channel's name in the delivery log.
const Channel = "webhook"

// Name is the webhook channel's name.
func (s *Service) Name() string { return Channel }

// Route routes each alert to each enabled endpoint of its partner whose
// filter takes it: one read of endpoints, in tx (a fan-out's transaction),
// of what routing needs only and scanned by hand: it runs at every fan-out,
// and gorm's reading of whole rows into structs by reflection was a fifth of
// what queueing deliveries cost the server.
func (s *Service) Route(tx *gorm.DB, alerts []*models.Alert) ([]delivery.Route, error) {
	in, args := database.In(delivery.PartnersOf(alerts))
	rows, err := database.Query(tx, "SELECT id, partner_id, filter_kinds, filter_customers FROM webhook_endpoints WHERE partner_id IN "+in+" AND disabled_at IS NULL", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var routes []delivery.Route
	for rows.Next() {
		var r endpointRow
		if err := rows.Scan(&r.ID, &r.PartnerID, &r.FilterKinds, &r.FilterCustomers); err != nil {
			return nil, err
		}
		e := r.endpoint()
		for _, a := range alerts {
			if a.PartnerID == e.PartnerID && e.wants(a.Kind, a.CustomerID) {
				routes = append(routes, delivery.Route{Target: e.ID, Partner: e.PartnerID, Alert: a.ID})
			}
		}
	}
	return routes, rows.Err()
}

// RouteNotice sends no notice by webhook: a notice says an endpoint was
// disabled, and goes to the partner's inboxes (the e-mail channel) and its
// notices list.
func (s *Service) RouteNotice(*gorm.DB, *delivery.Notice) ([]delivery.Route, error) { return nil, nil }

// Payload is what an endpoint receives, in the envelope the Standard
// Webhooks specification describes: the event's type, when it happened (the
// alert was raised), and the alert's fields as the GraphQL Alert has them,
// with its customer's and partner's ids.
type Payload struct {
	Type      string       `json:"type"`
	Timestamp string       `json:"timestamp"`
	Data      PayloadAlert `json:"data"`
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
	return json.Marshal(Payload{Type: "alert." + strings.ToLower(string(a.Kind)), Timestamp: p.CreatedAt, Data: p})
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

// Sender reads one endpoint and returns what posts an alert to it, signed:
// one read of the endpoint for the alerts a worker holds for it.
func (s *Service) Sender(ctx context.Context, target uint) func(*delivery.Message) delivery.Outcome {
	e, err := s.cache.get(ctx, s.db, target)
	return func(m *delivery.Message) delivery.Outcome {
		switch {
		case err != nil:
			return delivery.Outcome{Error: "the endpoint could not be read; retrying"}
		case e == nil || e.DisabledAt != nil || m.Alert == nil:
			return delivery.Outcome{Error: "the endpoint was deleted or disabled", Final: true}
		}
		o := s.post(ctx, e, m.Alert)
		if o.Code != nil && *o.Code == http.StatusGone {
			s.cache.forget(target)
			e = nil // disabled: what follows fails without being sent
		}
		return o
	}
}

// post sends one alert to an endpoint.
func (s *Service) post(ctx context.Context, e *endpointRow, a *models.Alert) delivery.Outcome {
	body, err := s.payloads.get(a)
	if err != nil {
		return delivery.Outcome{Error: "the alert could not be encoded", Final: true}
	}
	now := time.Now()
	id := MessageID(e.ID, a.ID)
	signature, err := sign(e, id, now, body)
	if err != nil {
		return delivery.Outcome{Error: "the endpoint's secret is not usable", Final: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return delivery.Outcome{Error: "the endpoint's URL is not usable", Final: true}
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
		return delivery.Outcome{Latency: latency, Error: noAnswer(err, s.opts.Timeout)}
	}
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	res.Body.Close()
	status := res.StatusCode
	o := delivery.Outcome{Code: &status, Latency: latency, Response: string(excerpt)}
	switch {
	case status >= 200 && status < 300:
		o.Delivered = true
	case status == http.StatusGone:
		o.Error, o.Final = "410 Gone: the endpoint is disabled", true
	case status >= 300 && status < 400 && res.Header.Get("Location") != "":
		// Where it points, resolved against the endpoint's URL; the
		// recorder cuts the error at 500 bytes, so the URL comes last.
		to := res.Header.Get("Location")
		if u, err := res.Location(); err == nil {
			to = u.String()
		}
		o.Error = fmt.Sprintf("HTTP %d: redirects are not followed; if that is the endpoint, register %s", status, to)
	default:
		o.Error = fmt.Sprintf("HTTP %d", status)
	}
	return o
}

// FailingDays is how long an endpoint may fail every attempt before it is
// disabled.
const FailingDays = 5

// Settle keeps when each endpoint started failing (cleared by a success),
// and disables those that answered 410 Gone or have failed for FailingDays;
// their partners are told. At most four statements, whatever the number of
// endpoints, and for endpoints that keep failing one the cache says already
// started failing recently, none: marking them again or checking their days
// would change nothing.
func (s *Service) Settle(tx *gorm.DB, outcomes map[uint][]delivery.Outcome, now time.Time) ([]*delivery.Notice, error) {
	var gone, working, failing []uint
	for id, os := range outcomes {
		switch {
		case slices.ContainsFunc(os, func(o delivery.Outcome) bool { return o.Code != nil && *o.Code == http.StatusGone }):
			gone = append(gone, id)
		case slices.ContainsFunc(os, func(o delivery.Outcome) bool { return o.Delivered }):
			working = append(working, id)
		default:
			failing = append(failing, id)
		}
	}
	// Cleared on every success: a stale cache saying "not failing" must not
	// leave another process's mark to disable a working endpoint days later.
	if len(working) > 0 {
		res := tx.Exec("UPDATE webhook_endpoints SET failing_since = NULL WHERE id IN ? AND failing_since IS NOT NULL", working)
		if res.Error != nil {
			return nil, res.Error
		}
		if res.RowsAffected > 0 {
			s.cache.forget(working...) // read their new state
		}
	}
	var notices []*delivery.Notice
	if len(gone) > 0 {
		ns, err := disable(tx, gone, "the endpoint answered 410 Gone", now, "")
		if err != nil {
			return nil, err
		}
		notices = append(notices, ns...)
	}
	mark, check := s.failingToSettle(failing, now)
	if len(mark) > 0 {
		if err := tx.Exec("UPDATE webhook_endpoints SET failing_since = ? WHERE id IN ? AND failing_since IS NULL", now, mark).Error; err != nil {
			return nil, err
		}
		s.cache.forget(mark...)
	}
	if len(check) > 0 {
		ns, err := disable(tx, check, fmt.Sprintf("every attempt failed for %d days", FailingDays), now, " AND failing_since <= ?", now.Add(-FailingDays*24*time.Hour))
		if err != nil {
			return nil, err
		}
		notices = append(notices, ns...)
	}
	for _, n := range notices {
		s.cache.forget(*n.EndpointID)
	}
	return notices, nil
}

// failingToSettle splits endpoints whose attempts all failed into those to
// mark failing (not known to be already) and those whose failing days to
// check: all but those known to have started failing within FailingDays
// (a cache that says "not failing" may be behind another process's mark).
func (s *Service) failingToSettle(failing []uint, now time.Time) (mark, check []uint) {
	known := s.cache.failingSince(failing)
	cutoff := now.Add(-FailingDays * 24 * time.Hour)
	for _, id := range failing {
		since, ok := known[id]
		if !ok || since == nil {
			mark = append(mark, id)
		}
		if !ok || since == nil || !since.After(cutoff) {
			check = append(check, id)
		}
	}
	return mark, check
}

// disable turns off the endpoints of ids that are on and meet cond, saying
// why, and returns a notice for each it turned off.
func disable(tx *gorm.DB, ids []uint, reason string, now time.Time, cond string, args ...any) ([]*delivery.Notice, error) {
	var hit []endpointRow
	if err := tx.Table("webhook_endpoints").Where("id IN ? AND disabled_at IS NULL"+cond, append([]any{ids}, args...)...).
		Select("id, url").Find(&hit).Error; err != nil || len(hit) == 0 {
		return nil, err
	}
	var notices []*delivery.Notice
	for _, e := range hit {
		res, err := database.Exec(tx, "UPDATE webhook_endpoints SET disabled_at = ?, disabled_reason = ? WHERE id = ? AND disabled_at IS NULL", now, reason, e.ID)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		id := e.ID
		notices = append(notices, &delivery.Notice{Kind: delivery.NoticeEndpointDisabled, EndpointID: &id, Message: fmt.Sprintf(
			"Webhook endpoint %d (%s) was disabled: %s. Fix it, then enable it again with setWebhookEndpointEnabled and replay what it missed with replayWebhooks.",
			id, e.URL, reason)})
	}
	return notices, nil
}

// httpToHTTPS ends the error net/http returns when an https endpoint
// answers in plain HTTP: it has no type or variable of its own to match.
const httpToHTTPS = "server gave HTTP response to HTTPS client"

// noAnswer says why an attempt got no answer, for the delivery log: in
// words a partner can act on, and never the client's own text (which names
// addresses this server resolved, and its internals).
func noAnswer(err error, timeout time.Duration) string {
	var (
		dns       *net.DNSError
		netErr    net.Error
		notTLS    tls.RecordHeaderError
		authority x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, errForbiddenAddress):
		return errForbiddenAddress.Error()
	case errors.As(err, &dns):
		return "the host does not resolve"
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &authority):
		return "the TLS certificate is not signed by a trusted authority"
	case errors.As(err, &host):
		return "the TLS certificate does not name the endpoint's host"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the TLS certificate has expired or is not valid yet"
	case errors.As(err, &invalid):
		return "the TLS certificate is not valid"
	case errors.As(err, &notTLS), strings.HasSuffix(err.Error(), httpToHTTPS):
		return "the endpoint did not answer in TLS (an http server?)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "the connection closed before an answer"
	}
	return "connection failed"
}
