// Package alerts lists usage alerts and delivers them live.
//
// Changes write the alerts they raise to an outbox (Insert); every process's
// tail (Start) numbers committed outbox rows into the alerts table (see
// outbox.go), then reads the alerts with ids above the last it published, in
// id order, and publishes them to its in-process broker, from which
// subscriptions take them. A process that raised alerts wakes its own tail at
// once (Raised); the others find them on their next poll. Alert ids become
// visible in id order, so "id > last" never skips one, and a listener can
// resume after the last id it saw.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts/outbox"
	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/broker"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/failing"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/page"
	"github.com/cloudreseller/credit/internal/streams"
	"github.com/cloudreseller/credit/models"
)

// Defaults for Options.
const (
	DefaultPollInterval = 200 * time.Millisecond
	DefaultBuffer       = 256
	DefaultGather       = 5 * time.Millisecond
)

// Options tune the service.
type Options struct {
	// PollInterval is how often the tail looks for alerts raised by other
	// processes.
	PollInterval time.Duration
	// Buffer is how many alerts a listener may fall behind before it is
	// disconnected (it resumes with `after`).
	Buffer int
	// Gather is how long the tail, told that alerts were raised, waits for
	// more before numbering them: under load one pass numbers the alerts of
	// many changes (a pass per change cost a tenth of the throughput of
	// changes that raise alerts). A change waiting for its alerts' ids
	// (Numbered) cuts the wait short.
	Gather time.Duration
	// ForecastTick is how often every customer with recent usage has its
	// depletion forecast evaluated (DefaultForecastTick).
	ForecastTick time.Duration
	// ForecastGather is how long the forecaster gathers changes before
	// evaluating them (DefaultForecastGather).
	ForecastGather time.Duration
	// ForecastWindow is the trailing window of usage the burn rate is taken
	// over (rules.DefaultWindow).
	ForecastWindow time.Duration
	// Deliveries, if set, queues the deliveries of alerts (a process that
	// delivers; delivery.Service).
	Deliveries Deliveries
}

// Deliveries is told of alerts, in id order, to queue their deliveries. It
// must not change them: they are the ones published.
type Deliveries interface {
	// Numbered is told of the alerts a numbering pass of this process
	// numbered, once it committed.
	Numbered([]*models.Alert)
	// Published is told of alerts other processes numbered, once the tail
	// has read and published them (a process that delivers queues the
	// deliveries of one that does not).
	Published([]*models.Alert)
}

// Service lists alerts and delivers them live.
type Service struct {
	db     *gorm.DB
	opts   Options
	broker *broker.Broker[*models.Alert]
	wake   chan struct{}
	// urgent wakes the tail without gathering: someone waits.
	urgent chan struct{}
	log    *slog.Logger
	// lastPoll is the UnixNano time of the tail's last successful poll.
	lastPoll atomic.Int64
	// published is the id of the newest alert the tail has published.
	published atomic.Uint64
	// delivered and dropped count alerts sent to listeners and listeners
	// disconnected for falling behind.
	delivered, dropped atomic.Uint64

	mu sync.Mutex
	// next is the sequencer pass that callers of Numbered wait for: the
	// tail's next one, which starts after they asked.
	next *pass
	// stopped is closed when the tail ends; running is set while it runs.
	stopped chan struct{}
	running atomic.Bool
	// forecasts are the customers whose forecasts wait to be evaluated.
	forecasts pendingForecasts
}

// pass is one run of the sequencer, as waiters see it.
type pass struct {
	done  chan struct{}
	moved map[uint]*models.Alert // by RaisedID
}

// finish records what the pass numbered and releases its waiters.
func (p *pass) finish(moved []*models.Alert) {
	p.moved = make(map[uint]*models.Alert, len(moved))
	for _, a := range moved {
		p.moved[*a.RaisedID] = a
	}
	close(p.done)
}

// New returns a Service on db. Call Start to start delivering.
func New(db *gorm.DB, opts Options, log *slog.Logger) *Service {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Gather <= 0 {
		opts.Gather = DefaultGather
	}
	if opts.ForecastTick <= 0 {
		opts.ForecastTick = DefaultForecastTick
	}
	if opts.ForecastGather <= 0 {
		opts.ForecastGather = DefaultForecastGather
	}
	if opts.ForecastWindow <= 0 {
		opts.ForecastWindow = rules.DefaultWindow
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{db: db, opts: opts, broker: broker.New[*models.Alert](), wake: make(chan struct{}, 1),
		urgent: make(chan struct{}, 1), log: log, stopped: make(chan struct{}),
		forecasts: pendingForecasts{ids: map[uint]rules.Cause{}, wake: make(chan struct{}, 1)}}
}

// Listeners is the number of live subscriptions in this process.
func (s *Service) Listeners() int { return s.broker.Len() }

// Raised tells the tail that a change just committed alerts to the outbox:
// it numbers and delivers them within Options.Gather instead of at its next
// poll.
func (s *Service) Raised() { signal(s.wake) }

// Numbered waits until the tail has numbered alerts this process committed
// to the outbox (Insert set their RaisedID) and returns them, in the same
// order, as stored in the alerts table. Another process's tail may have
// numbered them first; they are then read from the table.
func (s *Service) Numbered(ctx context.Context, raised []*models.Alert) ([]*models.Alert, error) {
	if len(raised) == 0 {
		return nil, nil
	}
	out := make([]*models.Alert, len(raised))
	for {
		p, err := s.nextPass(ctx)
		if err != nil {
			return nil, err
		}
		missing := collect(out, raised, p.moved)
		if len(missing) == 0 {
			return out, nil
		}
		// Numbered by another process, or not yet (the pass failed).
		var stored []*models.Alert
		if err := s.db.WithContext(ctx).Where("raised_id IN ?", missing).Order("id").Find(&stored).Error; err == nil {
			// The newest of an outbox id: a store that forgets its
			// auto-increment counter on restart (MySQL before 8.0) hands
			// out outbox ids again once the outbox is empty.
			byRaised := make(map[uint]*models.Alert, len(stored))
			for _, a := range stored {
				byRaised[*a.RaisedID] = a
			}
			if len(collect(out, raised, byRaised)) == 0 {
				return out, nil
			}
		}
		select {
		case <-time.After(s.opts.PollInterval):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// collect fills the gaps in out with the numbered alerts of raised found in
// byRaised, and returns the outbox ids still missing.
func collect(out, raised []*models.Alert, byRaised map[uint]*models.Alert) (missing []uint) {
	for i, r := range raised {
		if out[i] == nil {
			out[i] = byRaised[*r.RaisedID]
		}
		if out[i] == nil {
			missing = append(missing, *r.RaisedID)
		}
	}
	return missing
}

// nextPass waits for a pass of the sequencer that starts after it is called,
// and returns it. Without a tail (not started yet, or stopped), it runs one.
func (s *Service) nextPass(ctx context.Context) (*pass, error) {
	for {
		p := s.upcoming()
		signal(s.urgent)
		if !s.running.Load() {
			if q := s.takePass(); q != nil {
				moved, _ := s.numberPending(ctx, true)
				q.finish(moved)
			}
		}
		select {
		case <-p.done:
			return p, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stopped:
			// The tail ended while p waited: run one here.
		}
	}
}

// upcoming returns the pass that callers asking now wait for.
func (s *Service) upcoming() *pass {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		s.next = &pass{done: make(chan struct{})}
	}
	return s.next
}

// takePass returns the pass waited for (nil if none): the sequencer run that
// begins now serves it.
func (s *Service) takePass() *pass {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.next
	s.next = nil
	return p
}

// signal wakes whoever reads c, once however often it is called meanwhile.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
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
	forecasting := make(chan struct{})
	go func() { defer close(forecasting); s.forecaster(ctx) }()
	go func() {
		defer close(c)
		defer func() { <-forecasting }()
		defer close(s.stopped)
		s.running.Store(true)
		defer s.running.Store(false)
		s.tail(ctx, last)
	}()
	return c, nil
}

// tail publishes new alerts until ctx ends. A store that stops answering is
// logged when it starts failing, every minute while it fails, and when it
// answers again; the tail resumes from the last alert it published.
func (s *Service) tail(ctx context.Context, last uint) {
	s.published.Store(uint64(last))
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	polls := failing.New(s.log, "alerts tail", "poll failed; retrying", "the store answers again")
	for {
		woken := false
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			woken = true
			s.gather(ctx)
		case <-s.urgent:
			woken = true
		case <-tick.C:
		}
		var err error
		last, err = s.poll(ctx, last, woken)
		if ctx.Err() != nil {
			return
		}
		polls.Note(err)
		if err == nil {
			s.lastPoll.Store(time.Now().UnixNano())
		}
		s.published.Store(uint64(last))
	}
}

// gather waits Options.Gather for more alerts to number, unless someone
// waits for them.
func (s *Service) gather(ctx context.Context) {
	t := time.NewTimer(s.opts.Gather)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.urgent:
	case <-ctx.Done():
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

// Stats are the alert tail's figures in this process, for operators.
type Stats struct {
	// Published is the id of the newest alert the tail has published.
	Published uint
	// LastPoll is when the tail last read the store successfully.
	LastPoll time.Time
	// Delivered counts alerts sent to listeners; Dropped counts listeners
	// disconnected for falling a buffer behind.
	Delivered, Dropped uint64
	// Listeners is the number of live subscriptions.
	Listeners int
}

// Stats returns the tail's figures.
func (s *Service) Stats() Stats {
	return Stats{
		Published: uint(s.published.Load()),
		LastPoll:  s.LastPoll(),
		Delivered: s.delivered.Load(),
		Dropped:   s.dropped.Load(),
		Listeners: s.Listeners(),
	}
}

// Backlog reads from the store the id of the newest numbered alert and how
// many committed alerts wait in the outbox to be numbered. With Stats'
// Published it tells how far this process's listeners lag behind the store.
func (s *Service) Backlog(ctx context.Context) (newest uint, outbox int64, err error) {
	if newest, err = s.newestID(ctx); err != nil {
		return 0, 0, err
	}
	err = s.db.WithContext(ctx).Raw("SELECT COUNT(*) FROM raised_alerts").Scan(&outbox).Error
	return newest, outbox, err
}

func (s *Service) newestID(ctx context.Context) (uint, error) {
	var seq models.AlertSequence
	err := s.db.WithContext(ctx).Take(&seq, 1).Error
	return seq.LastID, err
}

// poll numbers the outbox's committed rows, if it has any, and publishes every
// alert after last; it returns the new last id. Alerts it numbered itself
// right after last are published as they are, without reading them back.
func (s *Service) poll(ctx context.Context, last uint, woken bool) (uint, error) {
	p := s.takePass()
	moved, err := s.numberPending(ctx, woken || p != nil)
	if p != nil {
		p.finish(moved)
	}
	if err != nil {
		return last, err
	}
	if len(moved) > 0 && moved[0].ID == last+1 {
		for _, a := range moved {
			s.broker.Publish(a)
		}
		return moved[len(moved)-1].ID, nil // others' later alerts: next poll
	}
	return s.publishAfter(ctx, last)
}

// numberPending runs the sequencer until the outbox is empty. Unless told
// that rows are waiting, it first looks whether there are any.
func (s *Service) numberPending(ctx context.Context, waiting bool) ([]*models.Alert, error) {
	if !waiting {
		any, err := outbox.Pending(ctx, s.db)
		if err != nil || !any {
			return nil, err
		}
	}
	var all []*models.Alert
	for {
		moved, err := outbox.Sequence(ctx, s.db)
		all = append(all, moved...)
		if err == nil && len(moved) > 0 && s.opts.Deliveries != nil {
			s.opts.Deliveries.Numbered(moved)
		}
		if err != nil || len(moved) < outbox.PassSize {
			return all, err
		}
	}
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
		if len(rows) > 0 && s.opts.Deliveries != nil {
			s.opts.Deliveries.Published(rows)
		}
		if len(rows) < batch {
			return last, nil
		}
	}
}

// Filter narrows a listing of alerts. Zero fields do not filter.
type Filter struct {
	CustomerID *uint
	Kinds      []rules.Kind
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
	if err := s.flush(ctx, scope); err != nil {
		return none, err
	}
	q := selection{partnerID: scope, customerID: f.CustomerID, kinds: f.Kinds}.where(s.db.WithContext(ctx).Model(&models.Alert{}))
	if f.Threshold != nil {
		q = q.Where("threshold = ?", *f.Threshold)
	}
	q = database.CreatedBetween(q, f.From, f.To)
	if f.CustomerID != nil {
		q = database.SQLiteIndex(q, "alerts", "idx_alerts_customer")
	}
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
	case len(f.Kinds) > 0:
		return "idx_alerts_partner_kind"
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
	if err := s.flush(ctx, scope); err != nil {
		return nil, err
	}
	q := selection{partnerID: scope}.where(s.db.WithContext(ctx).Model(&models.Alert{}))
	return database.PagesPerCustomer(q, ids, req, "id", nil, alertCursor, func(a *models.Alert) uint { return a.CustomerID })
}

// flush numbers the outbox's rows of the partner (0: any) before a listing
// reads the alerts table, so that a listing shows the alerts of every change
// that returned before it began. Changes do not wait for their alerts to be
// numbered; the rare listing that finds some waiting does.
func (s *Service) flush(ctx context.Context, partnerID uint) error {
	q := s.db.WithContext(ctx).Table("raised_alerts").Select("id").Limit(1)
	if partnerID != 0 {
		q = q.Where("partner_id = ?", partnerID)
	}
	var ids []uint
	if err := q.Scan(&ids).Error; err != nil || len(ids) == 0 {
		return err
	}
	_, err := s.nextPass(ctx)
	return err
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
func (s *Service) Subscribe(ctx context.Context, customerID, after *uint, kinds []rules.Kind) (<-chan *models.Alert, error) {
	p, err := auth.Require(ctx, auth.RoleAdmin, auth.RolePartner)
	if err != nil {
		return nil, err
	}
	if customerID != nil {
		if _, err := accounts.FindCustomer(s.db.WithContext(ctx), p, *customerID, false); err != nil {
			return nil, err
		}
	}
	sel := selection{partnerID: p.PartnerID, customerID: customerID, kinds: kinds}
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
	kinds      []rules.Kind // nil: every kind
}

func (sel selection) match(a *models.Alert) bool {
	return (sel.partnerID == 0 || a.PartnerID == sel.partnerID) && (sel.customerID == nil || a.CustomerID == *sel.customerID) &&
		(sel.kinds == nil || slices.Contains(sel.kinds, a.Kind))
}

func (sel selection) where(q *gorm.DB) *gorm.DB {
	if sel.partnerID != 0 {
		q = q.Where("partner_id = ?", sel.partnerID)
	}
	if sel.customerID != nil {
		q = q.Where("customer_id = ?", *sel.customerID)
	}
	if sel.kinds != nil {
		q = q.Where("kind IN ?", sel.kinds)
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
			s.delivered.Add(1)
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
					s.dropped.Add(1)
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
