// Package delivery sends alerts, and notices to partners, through the
// channels partners set up (webhook endpoints, e-mail addresses: one
// subpackage of alerts each), at least once, with retries and a log of every
// attempt.
//
// A delivery is one message (an alert or a notice) for one target of one
// channel (an endpoint, an address). Deliveries of alerts are queued once the
// alerts are numbered, in fan-out passes of their own that move a cursor over
// the alerts (fanout.go), so that none is lost or queued twice, whichever
// process numbers them; nothing is added to the transactions of credit
// changes, of usage, nor of the numbering.
// Every process runs a dispatcher (Run) that leases due deliveries in a short
// transaction of its own (FOR UPDATE SKIP LOCKED where the store has it),
// attempts them, and records each attempt; a process killed mid-attempt
// leaves its lease to expire, and another process retries. Each target has
// at most one attempt in flight per process, and a slow target holds only its
// own deliveries: the dispatcher does not wait for it.
package delivery

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// Delivery states.
const (
	StatusPending   = "PENDING"
	StatusDelivered = "DELIVERED"
	StatusFailed    = "FAILED"
)

// Channel is a way of delivering: webhooks, e-mail.
type Channel interface {
	// Name is the channel's name in the store ("webhook", "email").
	Name() string
	// Route returns the deliveries alerts (in id order) need, reading in tx,
	// each target's in alert order.
	Route(tx *gorm.DB, alerts []*models.Alert) ([]Route, error)
	// RouteNotice returns the deliveries a notice to a partner needs.
	RouteNotice(tx *gorm.DB, n *Notice) ([]Route, error)
	// Sender reads one target, once for the deliveries a worker holds for
	// it, and returns what attempts one of them, bounded by the channel's
	// timeout. The worker calls it for each in order, and stops when the
	// process does.
	Sender(ctx context.Context, target uint) func(*Message) Outcome
	// Settle records, in the transaction that records attempts, what their
	// outcomes (by target, in order) mean for the targets (a streak of
	// failures). For each target it disables it returns the notice to its
	// partner (kind, endpoint, message; the partner is filled in).
	Settle(tx *gorm.DB, outcomes map[uint][]Outcome, now time.Time) ([]*Notice, error)
}

// Route is a delivery to queue: a message for a target.
type Route struct {
	Target, Partner uint
	Alert, Notice   uint // one of them
}

// Message is a delivery being attempted, with what it carries.
type Message struct {
	DeliveryID uint
	TargetID   uint
	PartnerID  uint
	// Attempt counts from 1.
	Attempt int
	// Alert or Notice is set.
	Alert  *models.Alert
	Notice *Notice
}

// Outcome is what an attempt came to.
type Outcome struct {
	Delivered bool
	// Code is the HTTP status or SMTP reply code, when there was one.
	Code *int
	// Latency is how long the attempt took.
	Latency time.Duration
	// Response is what the target answered, at most 1 KB.
	Response string
	// Error says, for people, why the attempt failed.
	Error string
	// Final fails the delivery without retrying (the target refused it for
	// good, or is gone).
	Final bool
}

// Options tune delivery.
type Options struct {
	// Retries are the pauses before each retry; after the last, a delivery
	// fails (dead letter). DefaultRetries when nil.
	Retries []time.Duration
	// Poll is how often a dispatcher looks for due deliveries (1 s); it is
	// woken at once when deliveries are queued.
	Poll time.Duration
	// Lease is how long a process holds the deliveries it leased (1 min):
	// a process killed mid-attempt leaves them to another after that. Make it
	// longer than PerTarget attempts at the slowest channel's timeout.
	Lease time.Duration
	// PerTarget bounds the deliveries of one target one lease takes
	// (DefaultPerTarget).
	PerTarget int
	// Targets bounds the targets a process attempts at once (64).
	Targets int
	// MaxPending bounds the deliveries of one target due and not yet made
	// (DefaultMaxPending); past it the target's alerts wait to be queued as
	// it catches up (lag.go).
	MaxPending int
	// MaxRate bounds the attempts a process makes a second, every channel
	// together (DefaultMaxRate): each costs CPU (about 0.1 ms here, and as
	// much again in the database), and unbounded, a storm of alerts to a
	// hundred endpoints took a quarter of a 2-core machine from the writes.
	// Beyond it deliveries wait their turn; none is lost. Set it well above
	// the rate deliveries come at in normal times: near it, targets waiting
	// for the budget stay busy and their next deliveries take the leased
	// path, which costs more. Lease grows by the longest wait.
	MaxRate float64
}

// DefaultPerTarget is how many deliveries of one target a lease takes.
const DefaultPerTarget = 5

// DefaultMaxRate is the most attempts a process makes a second: about a
// tenth of a core here on the server's side, 3.6 million deliveries an hour.
const DefaultMaxRate = 1000

// DefaultRetries retry after 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, then every
// 12 h: 12 attempts over about 3 days (72 h), with ±20 % jitter.
var DefaultRetries = []time.Duration{
	10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour,
}

// counts are a channel's attempts in this process, by outcome.
type counts struct {
	delivered, retried, failed atomic.Int64
}

// Attempts are a channel's attempts in this process, by outcome.
type Attempts struct {
	Delivered, Retried, Failed int64
}

// Service queues and dispatches deliveries for its channels.
type Service struct {
	db       *gorm.DB
	opts     Options
	channels map[string]Channel
	order    []Channel
	log      *slog.Logger
	wake     chan struct{}
	// attempts count attempts by channel and outcome.
	attempts map[string]*counts
	// budget paces attempts to MaxRate; paced adds up how long attempts
	// waited for it (nanoseconds).
	budget *rate.Limiter
	paced  atomic.Int64

	// results carry attempts from the workers to the recorder (Run).
	results chan result
	// running is set while Run runs; runCtx is its context.
	running atomic.Bool
	runCtx  context.Context
	// numbered wakes the dispatcher to fan out alerts this process numbered;
	// fresh are those alerts, in id order, until queued (under mu).
	numbered chan struct{}
	fresh    []*models.Alert
	// others wakes it to queue alerts other processes numbered, if they
	// have not.
	others chan struct{}

	mu sync.Mutex
	// busy are the targets with deliveries in flight here; a target's value
	// tells whether deliveries were queued for it meanwhile, for its worker
	// to wake the dispatcher when done.
	busy map[targetKey]bool
	// inFlight runs the attempts of a Run.
	inFlight *workers
}

// New returns the delivery service on db; Add its channels before Run.
func New(db *gorm.DB, opts Options, log *slog.Logger) *Service {
	if opts.Retries == nil {
		opts.Retries = DefaultRetries
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.PerTarget <= 0 {
		opts.PerTarget = DefaultPerTarget
	}
	if opts.Targets <= 0 {
		opts.Targets = 64
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	if opts.MaxRate <= 0 {
		opts.MaxRate = DefaultMaxRate
	}
	// A worker waits for the budget holding its lease: at worst behind every
	// other target's deliveries in hand.
	opts.Lease += time.Duration(float64(opts.Targets*opts.PerTarget) / opts.MaxRate * float64(time.Second))
	if log == nil {
		log = slog.Default()
	}
	// The burst is a tenth of a second's budget, and at least a target's
	// lease (a worker waits for all of its deliveries at once).
	burst := max(opts.PerTarget, int(opts.MaxRate/10))
	return &Service{db: db, opts: opts, channels: map[string]Channel{}, log: log, wake: make(chan struct{}, 1), numbered: make(chan struct{}, 1), others: make(chan struct{}, 1), busy: map[targetKey]bool{},
		attempts: map[string]*counts{}, budget: rate.NewLimiter(rate.Limit(opts.MaxRate), burst)}
}

// Add delivers through c too. Call it before Run and before alerts are
// numbered.
func (s *Service) Add(c Channel) {
	s.channels[c.Name()] = c
	s.order = append(s.order, c)
	s.attempts[c.Name()] = &counts{}
}

// Attempts returns each channel's attempts in this process so far.
func (s *Service) Attempts() map[string]Attempts {
	out := make(map[string]Attempts, len(s.attempts))
	for name, c := range s.attempts {
		out[name] = Attempts{Delivered: c.delivered.Load(), Retried: c.retried.Load(), Failed: c.failed.Load()}
	}
	return out
}

// Paced is how long attempts in this process have waited for its budget
// (MaxRate) so far: time that grows means alerts come faster than the budget
// lets them out.
func (s *Service) Paced() time.Duration {
	return time.Duration(s.paced.Load())
}

// Due are deliveries of a channel due and not yet delivered, in the store
// (every process's), and how late the oldest is.
type Due struct {
	Count  int64
	Oldest time.Duration
}

// Backlog reads, for each channel, the deliveries due now.
func (s *Service) Backlog(ctx context.Context) (map[string]Due, error) {
	now := s.db.NowFunc()
	var rows []struct {
		Channel string
		N       int64
		Oldest  any
	}
	if err := s.db.WithContext(ctx).Raw("SELECT channel, COUNT(*) AS n, MIN(next_attempt_at) AS oldest FROM alert_deliveries"+
		" WHERE status = ? AND next_attempt_at <= ? GROUP BY channel", StatusPending, now).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := map[string]Due{}
	for _, c := range s.order {
		out[c.Name()] = Due{}
	}
	for _, r := range rows {
		oldest, err := database.ScanTime(r.Oldest)
		if err != nil {
			return nil, err
		}
		out[r.Channel] = Due{Count: r.N, Oldest: now.Sub(oldest)}
	}
	return out, nil
}

// Wake tells the dispatcher that deliveries were queued and committed.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
