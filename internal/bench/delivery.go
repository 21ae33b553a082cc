package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// endpointCounts are the numbers of webhook endpoints the delivery section
// compares with none.
var endpointCounts = []int{1, 10, 100}

// DefaultAlertRate is the rate of alert-raising changes made beside each
// measured workload (every one raises an alert, delivered to every endpoint
// of its partner), the same with and without endpoints, unless
// Config.AlertRate says otherwise.
const DefaultAlertRate = 25 // changes a second

// receiver takes webhooks: /ok answers at once, /fail with 500 (retried
// later), /slow after two seconds. It keeps how long after its alert was
// raised each /ok delivery arrived.
type receiver struct {
	srv *http.Server
	url string

	mu    sync.Mutex
	delay []time.Duration
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String()}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	switch req.URL.Path {
	case "/fail":
		w.WriteHeader(http.StatusInternalServerError)
		return
	case "/slow":
		time.Sleep(2 * time.Second)
		return
	}
	// The receiver shares the machine with the server: it reads only the
	// alert's time, without decoding the whole body.
	_, rest, ok := bytes.Cut(body, []byte(`"createdAt":"`))
	raised, _, _ := bytes.Cut(rest, []byte(`"`))
	if at, err := time.Parse(time.RFC3339Nano, string(raised)); ok && err == nil {
		r.mu.Lock()
		r.delay = append(r.delay, time.Since(at))
		r.mu.Unlock()
	}
}

// delays returns and forgets the delays measured so far.
func (r *receiver) delays() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.delay
	r.delay = nil
	return d
}

// delivery measures setCredit and recordUsage with 1, 10 and 100 webhook
// endpoints (spread over the partners; half of them failing or slow) against
// the same run with none, while a steady source raises alerts, and the time
// from an alert to its arrival at the endpoints that answer at once.
func (e *env) delivery(ctx context.Context, cfg Config) ([]row, latencyRow, error) {
	rc, hot, err := e.alertSourceAndReceiver(ctx)
	if err != nil {
		return nil, latencyRow{}, err
	}
	defer rc.srv.Close()
	work := []workload{
		{name: "`setCredit`, 32 clients, random customers of 4 partners", unit: "changes", clients: 32, server: e.serverSetCredit},
		{name: "`recordUsage`, batches of 500 over 1,000 random customers, 4 clients", unit: "events", clients: 4, server: e.serverUsage},
	}
	// Each measurement with endpoints comes right after one without, its
	// baseline.
	var counts []int
	for _, n := range endpointCounts {
		counts = append(counts, 0, n)
	}
	// results are by workload and number of endpoints; before[i][n] are the
	// runs without endpoints that came just before those with n: each is
	// compared with its own, since later runs of a round find a bigger store.
	results := make([]map[int][]Result, len(work))
	before := make([]map[int][]Result, len(work))
	for i := range results {
		results[i], before[i] = map[int][]Result{}, map[int][]Result{}
	}
	var delays []time.Duration
	// due counts the deliveries to endpoints that answer at once: every
	// alert of their partners, those the workloads raise too.
	due := 0
	var lastAlert int64
	for round := range cfg.Rounds {
		for j, n := range counts {
			e.round = 1000 + 10*round + j // event ids unique to this measurement
			_, lastAlert, err = e.alertsAfter(ctx, lastAlert)
			if err != nil {
				return nil, latencyRow{}, err
			}
			ids, err := e.registerEndpoints(ctx, rc.url, n)
			if err != nil {
				return nil, latencyRow{}, err
			}
			for i, w := range work {
				stop := e.raiseAlerts(ctx, hot)
				var r Result
				if round == 0 && cfg.ProfileDir != "" && (j == 0 || j == len(counts)-1) {
					if r, err = e.profiled(ctx, cfg.ProfileDir, fmt.Sprintf("delivery %d %s", n, w.unit), w.clients, cfg.Duration, w.server); err != nil {
						fmt.Fprintf(cfg.Out, "(no profile: %v)\n", err)
					}
				} else {
					r = measure(ctx, w.clients, cfg.Duration, w.server)
				}
				results[i][n] = append(results[i][n], r)
				if n > 0 {
					runs := results[i][0]
					before[i][n] = append(before[i][n], runs[len(runs)-1])
				}
				stop()
			}
			time.Sleep(200 * time.Millisecond) // the last deliveries arrive
			delays = append(delays, rc.delays()...)
			raised, last, err := e.alertsAfter(ctx, lastAlert)
			if err != nil {
				return nil, latencyRow{}, err
			}
			lastAlert = last
			for k := range n {
				if endpointPath(k) == "/ok" {
					due += raised[k%partners]
				}
			}
			if err := e.deleteEndpoints(ctx, ids); err != nil {
				return nil, latencyRow{}, err
			}
		}
		if err := e.resetCredit(ctx, hot); err != nil {
			return nil, latencyRow{}, err
		}
		// Back at 74 %, each hot customer's next step must take 14.00 off:
		// one that added it would cross nothing, nor would any after it.
		e.swing = (e.swing/(2*len(hot)) + 1) * 2 * len(hot)
	}
	var rows []row
	perRound := len(endpointCounts) // runs without endpoints in a round
	for i, w := range work {
		// The noise: runs without endpoints, alternate ones against each
		// other; paired, each against the one before it in its round (one
		// run with endpoints between them).
		var odd, even []Result
		var noise []float64
		for k, r := range results[i][0] {
			if k%2 == 0 {
				even = append(even, r)
			} else {
				odd = append(odd, r)
			}
			if k%perRound > 0 {
				noise = append(noise, r.Rate()/results[i][0][k-1].Rate())
			}
		}
		if len(odd) > 0 {
			rows = append(rows, row{name: w.name + ", no endpoints (each run vs the one before it: the noise)", unit: w.unit,
				server: median(odd), raw: median(even), paired: noise})
		}
		for _, n := range endpointCounts {
			var paired []float64
			for k, r := range results[i][n] {
				paired = append(paired, r.Rate()/before[i][n][k].Rate())
			}
			rows = append(rows, row{name: fmt.Sprintf("%s, %d endpoint%s", w.name, n, plural(n)), unit: w.unit, target: 0.95,
				server: median(results[i][n]), raw: median(before[i][n]), paired: paired})
		}
	}
	lat := latencyRow{name: fmt.Sprintf("alert raised → received at an endpoint that answers at once: %d of the %d deliveries due arrived within 200 ms of the measurement's end",
		len(delays), due), limit: 250 * time.Millisecond}
	if len(delays) > 0 {
		slices.Sort(delays)
		lat.p50, lat.p99 = delays[len(delays)/2], delays[min(len(delays)-1, len(delays)*99/100)]
	}
	return rows, lat, ctx.Err()
}

// alertSourceAndReceiver readies a delivery section: the customers the
// alert source swings (one per partner, at 74 %; made once, shared by the
// sections, as e.swing carries on) and a receiver of webhooks (the caller
// closes its server).
func (e *env) alertSourceAndReceiver(ctx context.Context) (*receiver, []customer, error) {
	if e.swung == nil {
		if err := e.loadPartners(ctx); err != nil {
			return nil, nil, err
		}
		hot, err := e.customersAt(ctx, partners, "740.00")
		if err != nil {
			return nil, nil, err
		}
		e.swung = hot
	}
	rc, err := newReceiver()
	return rc, e.swung, err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// endpointPath is what the i-th endpoint registered does: endpoints go to
// the partners in turn, and each partner's in turn answer at once, fail,
// answer at once, are slow.
func endpointPath(i int) string {
	return [...]string{"/ok", "/fail", "/ok", "/slow"}[i/partners%4]
}

// registerEndpoints registers n endpoints (see endpointPath): half answer at
// once, a quarter fail, a quarter are slow, in each partner's share.
func (e *env) registerEndpoints(ctx context.Context, base string, n int) ([]string, error) {
	var ids []string
	for i := range n {
		path := endpointPath(i)
		var out struct {
			CreateWebhookEndpoint struct{ Endpoint struct{ ID string } }
		}
		if err := e.gql(ctx, e.partnerKeys[i%partners], `mutation($u: String!) { createWebhookEndpoint(input: {url: $u}) { endpoint { id } } }`,
			map[string]any{"u": base + path}, &out); err != nil {
			return nil, err
		}
		ids = append(ids, out.CreateWebhookEndpoint.Endpoint.ID)
	}
	return ids, nil
}

func (e *env) deleteEndpoints(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := e.gql(ctx, e.admin, `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`, map[string]any{"id": id}, nil); err != nil {
			return err
		}
	}
	return nil
}

// raiseAlerts changes the hot customers' credit by ∓14.00 at e.alertRate a
// second, each change crossing 75 % or recovering from it, until stopped.
func (e *env) raiseAlerts(ctx context.Context, hot []customer) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(e.alertRate))
		defer tick.Stop()
		// e.swing carries on from the last run: each customer alternates.
		for ; ; e.swing++ {
			i := e.swing
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			// Not cut short: a change the server applied must be counted.
			e.swingCredit(context.WithoutCancel(ctx), hot[i%len(hot)], i/len(hot))
		}
	}()
	return func() { cancel(); <-done }
}

// alertsAfter counts the alerts numbered after id, by partner, and returns
// the newest alert's id.
func (e *env) alertsAfter(ctx context.Context, id int64) (counts [partners]int, last int64, err error) {
	last = id
	rows, err := e.serverDB().QueryContext(ctx, "SELECT partner_id, COUNT(*), MAX(id) FROM alerts WHERE id > ? GROUP BY partner_id", id)
	if err != nil {
		return counts, last, err
	}
	defer rows.Close()
	for rows.Next() {
		var partner string
		var n int
		var newest int64
		if err := rows.Scan(&partner, &n, &newest); err != nil {
			return counts, last, err
		}
		if p := slices.Index(e.partnerIDs, partner); p >= 0 {
			counts[p] = n
		}
		last = max(last, newest)
	}
	return counts, last, rows.Err()
}
