// Package alerts lists usage alerts and delivers them live.
//
// The alerts table is the outbox. Every process tails it (Start): it reads the
// alerts with ids above the last it published, in id order, and publishes them
// to its in-process broker, from which subscriptions take them. A process that
// raised alerts wakes its own tail at once (Wake); the others find them on their
// next poll. Alert ids become visible in id order (see ledger.writeAlerts), so
// "id > last" never skips one, and a listener can resume after the last id it
// saw.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/broker"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/internal/streams"
	"github.com/cloudreseller/credit/models"
)

// Defaults for Options.
const (
	DefaultPollInterval = 200 * time.Millisecond
	DefaultBuffer       = 256
)

// Options tune the service.
type Options struct {
	// PollInterval is how often the tail looks for alerts raised by other
	// processes.
	PollInterval time.Duration
	// Buffer is how many alerts a listener may fall behind before it is
	// disconnected (it resumes with `after`).
	Buffer int
}

// Service lists alerts and delivers them live.
type Service struct {
	db     *gorm.DB
	opts   Options
	broker *broker.Broker[*models.Alert]
	wake   chan struct{}
	// committed carries alerts this process committed to the tail.
	committed chan []*models.Alert
	log       *slog.Logger
	// lastPoll is the UnixNano time of the tail's last successful poll.
	lastPoll atomic.Int64
}

// New returns a Service on db. Call Start to start delivering.
func New(db *gorm.DB, opts Options, log *slog.Logger) *Service {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, opts: opts, broker: broker.New[*models.Alert](), wake: make(chan struct{}, 1),
		committed: make(chan []*models.Alert, 64), log: log}
}

// Listeners is the number of live subscriptions in this process.
func (s *Service) Listeners() int { return s.broker.Len() }

// Committed hands the tail alerts this process has just committed (all of one
// transaction, in id order). When they are the next ids it publishes them as
// they are, without reading the store; otherwise (another process's alerts
// come first) it reads the store from its last id.
func (s *Service) Committed(alerts []*models.Alert) {
	if len(alerts) == 0 {
		return
	}
	select {
	case s.committed <- alerts:
	default:
		s.Wake() // the tail is behind: it will read the store
	}
}

// Wake tells the tail that alerts were just committed.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start begins tailing the alerts table: from the newest alert that exists now,
// it publishes new alerts in id order until ctx ends, and then closes the
// returned channel.
func (s *Service) Start(ctx context.Context) (done <-chan struct{}, err error) {
	last, err := s.newestID(ctx)
	if err != nil {
		return nil, fmt.Errorf("alerts: read the newest alert: %w", err)
	}
	s.lastPoll.Store(time.Now().UnixNano())
	c := make(chan struct{})
	go func() {
		defer close(c)
		s.tail(ctx, last)
	}()
	return c, nil
}

// tail publishes new alerts until ctx ends. A store that stops answering is
// logged when it starts failing, every minute while it fails, and when it
// answers again; the tail resumes from the last alert it published.
func (s *Service) tail(ctx context.Context, last uint) {
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	var failingSince, lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-s.committed:
			if batch[len(batch)-1].ID <= last {
				continue // already published
			}
			if batch[0].ID == last+1 {
				for _, a := range batch {
					s.broker.Publish(a)
				}
				last = batch[len(batch)-1].ID
				continue
			}
		case <-s.wake:
		case <-tick.C:
		}
		var err error
		last, err = s.publishAfter(ctx, last)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && !failingSince.IsZero():
			s.log.Info("alerts tail: the store answers again", "failed_for", now.Sub(failingSince).Round(time.Millisecond))
			failingSince = time.Time{}
		case err != nil && failingSince.IsZero():
			s.log.Warn("alerts tail: poll failed; retrying", "err", err)
			failingSince, lastLog = now, now
		case err != nil && now.Sub(lastLog) >= time.Minute:
			s.log.Warn("alerts tail: still failing", "since", failingSince, "err", err)
			lastLog = now
		}
		if err == nil {
			s.lastPoll.Store(now.UnixNano())
		}
	}
}

// LastPoll is when the tail last read the store successfully (zero before
// its first poll).
func (s *Service) LastPoll() time.Time {
	if n := s.lastPoll.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (s *Service) newestID(ctx context.Context) (uint, error) {
	var seq models.AlertSequence
	err := s.db.WithContext(ctx).Take(&seq, 1).Error
	return seq.LastID, err
}

// publishAfter publishes every alert with an id above last and returns the new
// last id.
func (s *Service) publishAfter(ctx context.Context, last uint) (uint, error) {
	const batch = 500
	for {
		var rows []*models.Alert
		err := s.db.WithContext(ctx).Where("id > ?", last).Order("id").Limit(batch).Find(&rows).Error
		if err != nil {
			return last, err
		}
		for _, a := range rows {
			s.broker.Publish(a)
			last = a.ID
		}
		if len(rows) < batch {
			return last, nil
		}
	}
}

// Filter narrows a listing of alerts. Zero fields do not filter.
type Filter struct {
	CustomerID *uint
	Threshold  *int
	From       *time.Time // inclusive
	To         *time.Time // exclusive
}

// List lists alerts newest first: a PARTNER key's own customers', all for ADMIN.
func (s *Service) List(ctx context.Context, f Filter, args page.Args) (page.Result[*models.Alert], error) {
	var none page.Result[*models.Alert]
	scope, err := viewerScope(ctx)
	if err != nil {
		return none, err
	}
	req, err := args.Parse()
	if err != nil {
		return none, err
	}
	q := selection{partnerID: scope, customerID: f.CustomerID}.where(s.db.WithContext(ctx).Model(&models.Alert{}))
	if f.Threshold != nil {
		q = q.Where("threshold = ?", *f.Threshold)
	}
	q = database.CreatedBetween(q, f.From, f.To)
	total, err := database.CountIf(req.Count, q) // counting, the optimizer's own choice is best
	if err != nil {
		return none, err
	}
	q = database.ForceIndex(q, "alerts", alertIndex(scope, f))
	// Ids grow in commit order, so newest first is id descending.
	var rows []*models.Alert
	q = database.Seek(q, "id", true, req.After != nil, nil, req.AfterID())
	if err := q.Limit(req.Limit + 1).Find(&rows).Error; err != nil {
		return none, err
	}
	return page.Build(rows, req, total, alertCursor), nil
}

// alertIndex names the index that serves a partner's alerts with the filter
// (none across partners, or for one customer).
func alertIndex(partnerID uint, f Filter) string {
	switch {
	case partnerID == 0 || f.CustomerID != nil:
		return ""
	case f.Threshold != nil:
		return "idx_alerts_partner_threshold"
	}
	return "idx_alerts_partner"
}

// ListOfCustomers is List for each of many customers at once, in two queries
// whatever their number.
func (s *Service) ListOfCustomers(ctx context.Context, ids []uint, args page.Args) (map[uint]page.Result[*models.Alert], error) {
	scope, err := viewerScope(ctx)
	if err != nil {
		return nil, err
	}
	req, err := args.Parse()
	if err != nil {
		return nil, err
	}
	q := selection{partnerID: scope}.where(s.db.WithContext(ctx).Model(&models.Alert{}))
	return database.PagesPerCustomer(q, ids, req, "id", nil, alertCursor, func(a *models.Alert) uint { return a.CustomerID })
}

func alertCursor(a *models.Alert) page.Cursor { return page.Cursor{ID: a.ID} }

// viewerScope returns the partner a caller may see alerts of (0: all, for ADMIN).
func viewerScope(ctx context.Context) (uint, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	return p.PartnerID, err
}

// Subscribe delivers the caller's alerts (one customer's, when customerID is
// set): first every stored alert after the id `after`, in order, then the live
// ones, without gaps or repeats. The channel closes when ctx ends, or when the
// listener falls too far behind (it then resumes with the last id it got).
func (s *Service) Subscribe(ctx context.Context, customerID, after *uint) (<-chan *models.Alert, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	if customerID != nil {
		if _, err := accounts.FindCustomer(s.db.WithContext(ctx), p, *customerID, false); err != nil {
			return nil, err
		}
	}
	sel := selection{partnerID: p.PartnerID, customerID: customerID}
	// Subscribe before reading the store: whatever commits from now on reaches
	// the subscription, and whatever committed before is in the store.
	live := s.broker.Subscribe(s.opts.Buffer, sel.match)
	out := make(chan *models.Alert)
	go s.deliver(ctx, live, out, sel, after)
	return out, nil
}

// selection is which alerts a listener gets: one partner's (0: all), and
// optionally one customer's.
type selection struct {
	partnerID  uint
	customerID *uint
}

func (sel selection) match(a *models.Alert) bool {
	return (sel.partnerID == 0 || a.PartnerID == sel.partnerID) && (sel.customerID == nil || a.CustomerID == *sel.customerID)
}

func (sel selection) where(q *gorm.DB) *gorm.DB {
	if sel.partnerID != 0 {
		q = q.Where("partner_id = ?", sel.partnerID)
	}
	if sel.customerID != nil {
		q = q.Where("customer_id = ?", *sel.customerID)
	}
	return q
}

// deliver sends stored alerts after `after`, then live ones, to out. It stops
// when ctx ends, when the listener falls a buffer behind (SLOW_CONSUMER), or
// when the session it belongs to is ended (its key revoked, a shutdown); the
// reason goes to the transport through streams.End.
func (s *Service) deliver(ctx context.Context, live *broker.Subscription[*models.Alert], out chan<- *models.Alert, sel selection, after *uint) {
	defer close(out)
	defer live.Close()
	var ended <-chan struct{}
	sess := keys.SessionFrom(ctx)
	if sess != nil {
		ended = sess.Done()
	}
	send := func(a *models.Alert) bool {
		select {
		case out <- a:
			return true
		case <-ctx.Done():
			return false
		case <-ended:
			streams.End(ctx, sess.Err())
			return false
		}
	}
	var last uint
	if after != nil {
		var ok bool
		if last, ok = s.replay(ctx, *after, sel, send); !ok {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ended:
			streams.End(ctx, sess.Err())
			return
		case a, ok := <-live.C:
			if !ok {
				if live.Dropped() {
					s.log.Info("alerts listener fell behind and was disconnected", "last", last)
					streams.End(ctx, errs.E(errs.SlowConsumer,
						"the listener fell more than %d alerts behind and was disconnected: subscribe again with after: %q", s.opts.Buffer, fmt.Sprint(last)))
				}
				return
			}
			if a.ID <= last {
				continue // already replayed from the store
			}
			if !send(a) {
				return
			}
			last = a.ID
		}
	}
}

// replay sends the selected stored alerts after id `after`, in id order. It
// returns the last id sent (or after), and false when delivery must stop.
func (s *Service) replay(ctx context.Context, after uint, sel selection, send func(*models.Alert) bool) (uint, bool) {
	const batch = 500
	last := after
	for {
		var rows []*models.Alert
		q := sel.where(s.db.WithContext(ctx)).Where("id > ?", last).Order("id").Limit(batch)
		if err := q.Find(&rows).Error; err != nil {
			if ctx.Err() == nil {
				s.log.Warn("alerts replay failed", "err", err)
				streams.End(ctx, errs.E(errs.ServiceUnavailable,
					"stored alerts cannot be read right now: subscribe again with after: %q", fmt.Sprint(last)))
			}
			return last, false
		}
		for _, a := range rows {
			if !send(a) {
				return last, false
			}
			last = a.ID
		}
		if len(rows) < batch {
			return last, true
		}
	}
}
