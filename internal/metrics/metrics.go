// Package metrics exposes the server's figures to Prometheus, with the
// official Go client: requests by operation, open connections and
// subscriptions (counted by the HTTP layer), and the figures the domain
// packages keep themselves (the ledger's usage and alert totals, the alert
// tail's progress, the database pool and retried transactions), read when
// Prometheus scrapes. The domain packages do not depend on Prometheus.
package metrics

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/failing"
	"github.com/cloudreseller/credit/internal/ledger"
)

// Sources are where the figures kept outside this package come from.
type Sources struct {
	// DB is the store's connection pool.
	DB *sql.DB
	// Alerts is the alert tail.
	Alerts *alerts.Service
	// Ledger keeps the usage and alert totals.
	Ledger *ledger.Ledger
	// Deliveries sends alerts to webhooks and inboxes.
	Deliveries *delivery.Service
	// Version and SchemaVersion label credit_build_info.
	Version       string
	SchemaVersion int64
	// Logger hears about a scrape that could not read the store.
	Logger *slog.Logger
}

// Metrics holds the server's collectors in a registry of its own.
type Metrics struct {
	registry      *prometheus.Registry
	operations    *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	connections   *prometheus.GaugeVec
	subscriptions *prometheus.GaugeVec
	names         *boundedNames
}

// New returns the metrics of a server reading src.
func New(src Sources) *Metrics {
	if src.Logger == nil {
		src.Logger = slog.Default()
	}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credit_graphql_operations_total",
			Help: "GraphQL operations answered, by operation name (at most 100 distinct names, then \"other\"), type (query, mutation, subscription, none when the request did not parse) and outcome code (OK, or the first error's extensions.code).",
		}, []string{"operation", "type", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credit_graphql_operation_duration_seconds",
			Help:    "Time to answer a GraphQL query or mutation, by operation name and type (subscriptions last as long as their listener and are not timed).",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "type"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credit_open_connections",
			Help: "Open streaming connections, by transport (websocket, sse).",
		}, []string{"transport"}),
		subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credit_active_subscriptions",
			Help: "Running subscriptions, by transport (websocket, sse).",
		}, []string{"transport"}),
		names: &boundedNames{limit: maxOperationNames, seen: map[string]bool{}},
	}
	for _, t := range []string{"websocket", "sse"} {
		m.connections.WithLabelValues(t)
		m.subscriptions.WithLabelValues(t)
	}
	m.registry.MustRegister(m.operations, m.duration, m.connections, m.subscriptions,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(src.Version, src.SchemaVersion),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "credit_db_transactions_retried_total",
			Help: "Transactions run again after losing a deadlock or a lock wait.",
		}, func() float64 { return float64(database.RetriedTransactions()) }),
	)
	if src.DB != nil {
		m.registry.MustRegister(collectors.NewDBStatsCollector(src.DB, "credit"))
	}
	if src.Ledger != nil {
		m.registry.MustRegister(ledgerCollector{src.Ledger})
	}
	if src.Deliveries != nil {
		m.registry.MustRegister(&deliveryCollector{deliveries: src.Deliveries,
			reads: failing.New(src.Logger, "metrics", "the delivery backlog cannot be read from the store", "the delivery backlog can be read again")})
	}
	if src.Alerts != nil {
		m.registry.MustRegister(&tailCollector{alerts: src.Alerts,
			reads: failing.New(src.Logger, "metrics", "the alert backlog cannot be read from the store", "the alert backlog can be read again")})
	}
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// maxOperationNames bounds the operation label: clients name their
// operations, and every new name is a new series in Prometheus.
const maxOperationNames = 100

// Operation records one answered GraphQL operation. typ is query, mutation,
// subscription or none; code is OK or the outcome's error code. Subscriptions
// are counted when they end, and not timed.
func (m *Metrics) Operation(name, typ, code string, took time.Duration) {
	name = m.names.label(name)
	m.operations.WithLabelValues(name, typ, code).Inc()
	if typ == "query" || typ == "mutation" {
		m.duration.WithLabelValues(name, typ).Observe(took.Seconds())
	}
}

// Connected counts a streaming connection open until the returned func is
// called.
func (m *Metrics) Connected(transport string) (closed func()) {
	return track(m.connections.WithLabelValues(transport))
}

// Subscribed counts a subscription running until the returned func is called.
func (m *Metrics) Subscribed(transport string) (ended func()) {
	return track(m.subscriptions.WithLabelValues(transport))
}

func track(g prometheus.Gauge) func() {
	g.Inc()
	var once sync.Once
	return func() { once.Do(g.Dec) }
}

// boundedNames keeps the first `limit` operation names it sees and folds the
// rest into "other".
type boundedNames struct {
	mu    sync.Mutex
	limit int
	seen  map[string]bool
}

func (b *boundedNames) label(name string) string {
	if name == "" {
		return "anonymous"
	}
	if len(name) > 64 {
		return "other"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[name] {
		return name
	}
	if len(b.seen) >= b.limit {
		return "other"
	}
	b.seen[name] = true
	return name
}

func buildInfo(version string, schema int64) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "credit_build_info",
		Help: "Always 1: the build's version and the schema version it expects.",
	}, []string{"version", "schema_version"})
	g.WithLabelValues(version, strconv.FormatInt(schema, 10)).Set(1)
	return g
}

var (
	usageDesc = prometheus.NewDesc("credit_usage_events_total",
		"Usage events from the billing feed, by outcome: accepted (applied), duplicate (recorded before, not applied again), conflicting (recorded before with other figures; the batch was refused).",
		[]string{"outcome"}, nil)
	raisedDesc = prometheus.NewDesc("credit_alerts_raised_total",
		"Alerts committed by credit changes and usage in this process.", nil, nil)
)

// ledgerCollector reads the ledger's totals at each scrape.
type ledgerCollector struct{ l *ledger.Ledger }

func (c ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- usageDesc
	ch <- raisedDesc
}

func (c ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	ch <- prometheus.MustNewConstMetric(usageDesc, prometheus.CounterValue, float64(s.UsageAccepted), "accepted")
	ch <- prometheus.MustNewConstMetric(usageDesc, prometheus.CounterValue, float64(s.UsageDuplicates), "duplicate")
	ch <- prometheus.MustNewConstMetric(usageDesc, prometheus.CounterValue, float64(s.UsageConflicts), "conflicting")
	ch <- prometheus.MustNewConstMetric(raisedDesc, prometheus.CounterValue, float64(s.AlertsRaised))
}

var (
	deliveredDesc = prometheus.NewDesc("credit_alerts_delivered_total",
		"Alerts sent to listeners (one alert sent to three listeners counts three).", nil, nil)
	droppedDesc = prometheus.NewDesc("credit_alert_listeners_dropped_total",
		"Listeners disconnected for falling a buffer of alerts behind (SLOW_CONSUMER); they resume with `after`.", nil, nil)
	listenersDesc = prometheus.NewDesc("credit_alert_listeners",
		"Alert subscriptions live in this process.", nil, nil)
	publishedDesc = prometheus.NewDesc("credit_alert_tail_published_id",
		"Id of the newest alert this process has published to its listeners.", nil, nil)
	lastPollDesc = prometheus.NewDesc("credit_alert_tail_last_poll_timestamp_seconds",
		"When the alert tail last read the store successfully (Unix time).", nil, nil)
	lagDesc = prometheus.NewDesc("credit_alert_tail_lag",
		"Alerts numbered in the store that this process has not yet published (newest stored id minus credit_alert_tail_published_id).", nil, nil)
	outboxDesc = prometheus.NewDesc("credit_alert_outbox_depth",
		"Committed alerts waiting in the outbox to be numbered (all processes).", nil, nil)
	storeUpDesc = prometheus.NewDesc("credit_store_up",
		"1 when this scrape could read the alert backlog from the store, 0 when it could not (lag and outbox depth are then absent).", nil, nil)
)

// ScrapeTimeout bounds the store reads of one scrape.
const ScrapeTimeout = time.Second

// tailCollector reads the alert tail's figures, and its backlog from the
// store, at each scrape.
type tailCollector struct {
	alerts *alerts.Service
	reads  *failing.Log // the backlog's reads, logged once per state change
}

func (c *tailCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{deliveredDesc, droppedDesc, listenersDesc, publishedDesc, lastPollDesc, lagDesc, outboxDesc, storeUpDesc} {
		ch <- d
	}
}

func (c *tailCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.alerts.Stats()
	ch <- prometheus.MustNewConstMetric(deliveredDesc, prometheus.CounterValue, float64(s.Delivered))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(listenersDesc, prometheus.GaugeValue, float64(s.Listeners))
	ch <- prometheus.MustNewConstMetric(publishedDesc, prometheus.GaugeValue, float64(s.Published))
	if !s.LastPoll.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastPollDesc, prometheus.GaugeValue, float64(s.LastPoll.UnixNano())/1e9)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	newest, outbox, err := c.alerts.Backlog(ctx)
	c.reads.Note(err)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(max(int64(newest)-int64(s.Published), 0)))
	ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(outbox))
}

var (
	attemptsDesc = prometheus.NewDesc("credit_delivery_attempts_total",
		"Delivery attempts this process made, by channel (webhook, email) and outcome (delivered; retried: failed, due again; failed: given up or refused for good, a dead letter).",
		[]string{"channel", "outcome"}, nil)
	dueDesc = prometheus.NewDesc("credit_deliveries_due",
		"Deliveries due now and not yet made, by channel (all processes): a backlog that grows means targets or the dispatcher cannot keep up.",
		[]string{"channel"}, nil)
	oldestDueDesc = prometheus.NewDesc("credit_deliveries_oldest_due_seconds",
		"How long the oldest due delivery has waited, by channel (0 when none is due).", []string{"channel"}, nil)
	behindDesc = prometheus.NewDesc("credit_delivery_targets_behind",
		"Targets (endpoints, addresses) holding as many deliveries not yet made as they may, whose further alerts wait to be queued (all processes).", nil, nil)
	behindLongestDesc = prometheus.NewDesc("credit_delivery_targets_behind_longest_seconds",
		"How long the target behind the longest has been (0 when none is).", nil, nil)
	pacedDesc = prometheus.NewDesc("credit_delivery_paced_seconds_total",
		"How long this process's delivery attempts waited for its budget (DELIVERY_MAX_RATE attempts a second): growing means alerts come faster than the budget lets them out.", nil, nil)
	unqueuedDesc = prometheus.NewDesc("credit_alerts_unqueued_for_delivery",
		"Alerts numbered whose deliveries are not queued yet (all processes): above a few for long, queueing falls behind the alerts.", nil, nil)
)

// deliveryCollector reads the delivery counts, and the backlog from the
// store, at each scrape.
type deliveryCollector struct {
	deliveries *delivery.Service
	reads      *failing.Log
}

func (c *deliveryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{attemptsDesc, dueDesc, oldestDueDesc, unqueuedDesc, behindDesc, behindLongestDesc, pacedDesc} {
		ch <- d
	}
}

func (c *deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	for name, a := range c.deliveries.Attempts() {
		ch <- prometheus.MustNewConstMetric(attemptsDesc, prometheus.CounterValue, float64(a.Delivered), name, "delivered")
		ch <- prometheus.MustNewConstMetric(attemptsDesc, prometheus.CounterValue, float64(a.Retried), name, "retried")
		ch <- prometheus.MustNewConstMetric(attemptsDesc, prometheus.CounterValue, float64(a.Failed), name, "failed")
	}
	ch <- prometheus.MustNewConstMetric(pacedDesc, prometheus.CounterValue, c.deliveries.Paced().Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	backlog, err := c.deliveries.Backlog(ctx)
	c.reads.Note(err)
	if err != nil {
		return
	}
	for name, d := range backlog {
		ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, float64(d.Count), name)
		ch <- prometheus.MustNewConstMetric(oldestDueDesc, prometheus.GaugeValue, d.Oldest.Seconds(), name)
	}
	unqueued, err := c.deliveries.Unqueued(ctx)
	c.reads.Note(err)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(unqueuedDesc, prometheus.GaugeValue, float64(unqueued))
	}
	behind, longest, err := c.deliveries.Behind(ctx)
	c.reads.Note(err)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(behindDesc, prometheus.GaugeValue, float64(behind))
		ch <- prometheus.MustNewConstMetric(behindLongestDesc, prometheus.GaugeValue, longest.Seconds())
	}
}
