package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/testenv"
)

// deliveryEnv lets a server deliver to a receiver on loopback, with short
// timeouts, leases and retries.
var deliveryEnv = []string{"WEBHOOK_ALLOW_INSECURE=true", "WEBHOOK_ALLOW_PRIVATE=true", "WEBHOOK_TIMEOUT=2s", "WEBHOOK_RETRIES=500ms,500ms,500ms"}

// A process killed while a webhook attempt is in flight loses nothing: the
// delivery's lease runs out and another process delivers it, and a receiver
// that drops repeats by webhook-id holds it once.
func TestWebhookSurvivesAKilledProcess(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	hang := make(chan struct{})
	hook := newReceiver(func(n int) {
		if n == 1 {
			<-hang // the first attempt never answers: its sender is killed meanwhile
		}
	})
	defer hook.Close()
	defer close(hang) // first: Close waits for the hanging handler

	a := startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...)
	h := newHarness(t, a)
	w := h.setUp(1)
	h.must(w.partner, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, filter: {kinds: [USAGE_THRESHOLD]}}) { secret } }`,
		map[string]any{"u": hook.URL}, nil)
	h.must(w.billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
		map[string]any{"in": map[string]any{"events": []any{map[string]any{"eventId": "kill-1", "customerId": w.customers[0], "amount": "800"}}}}, nil)
	hook.waitFor(t, 10*time.Second, "the first attempt never came", func(ids []string) bool { return len(ids) == 1 })
	a.kill() // mid-attempt

	startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...)
	hook.waitFor(t, 20*time.Second, "the delivery was not retried by the other process",
		func(ids []string) bool { return len(held(ids[1:])) == 1 })
	time.Sleep(time.Second) // nothing more arrives
	ids := hook.received()
	for id, n := range held(ids[1:]) {
		if n != 1 {
			t.Errorf("webhook %s received %d times after the first", id, n)
		}
	}
	t.Logf("%d requests: the killed process's attempt, then the survivor's", len(ids))
}

// receiver is a webhook endpoint that keeps the webhook-id of every request,
// in the order they came, and answers "taken" once answer (told the
// request's number, from 1) returns.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	ids []string
}

func newReceiver(answer func(n int)) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		n := len(r.ids)
		r.mu.Unlock()
		answer(n)
		w.Write([]byte("taken"))
	}))
	return r
}

// received returns the webhook-ids received so far, in order.
func (r *receiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

// waitFor waits until what was received meets done, or fails the test
// after d, saying why and what came.
func (r *receiver) waitFor(t *testing.T, d time.Duration, why string, done func(ids []string) bool) {
	t.Helper()
	if !testenv.Eventually(d, func() bool { return done(r.received()) }) {
		t.Fatalf("%s (received %v)", why, r.received())
	}
}

// held is what a receiver that drops repeats by webhook-id (as the Standard
// Webhooks specification asks receivers to) holds of ids: each id, with how
// often it came.
func held(ids []string) map[string]int {
	n := map[string]int{}
	for _, id := range ids {
		n[id]++
	}
	return n
}

// receiverDelay is how long the receiver of the fault tests takes to
// answer, so that a fault injected under load finds attempts in flight, and
// attempts made and not yet recorded (the recorder writes every 100 ms).
const receiverDelay = 30 * time.Millisecond

// newDelayingReceiver is the receiver of the fault tests.
func newDelayingReceiver() *receiver {
	return newReceiver(func(int) { time.Sleep(receiverDelay) })
}

// hookAll registers an endpoint for every alert of the partner once the
// alerts raised so far are numbered and queued for delivery (none is raised
// meanwhile), and returns its id and the last alert before it. Read before
// the set-up's alerts were numbered, that last alert was too early: under
// load two of them were counted as due to the endpoint.
func (h *harness) hookAll(ctx context.Context, dsn, partnerKey, url string) (endpoint string, after uint) {
	h.t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	var queued, unnumbered uint
	if !testenv.Eventually(10*time.Second, func() bool {
		if err := db.QueryRowContext(ctx, "SELECT q.last_id, f.last_id, (SELECT COUNT(*) FROM raised_alerts) FROM alert_sequences q, alert_fanout f WHERE q.id = 1 AND f.id = 1").
			Scan(&after, &queued, &unnumbered); err != nil {
			h.t.Fatal(err)
		}
		return after == queued && unnumbered == 0
	}) {
		h.t.Fatalf("alerts up to %d numbered, queued for delivery up to %d, %d not numbered yet", after, queued, unnumbered)
	}
	var out struct {
		CreateWebhookEndpoint struct{ Endpoint struct{ ID string } }
	}
	h.must(partnerKey, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u}) { endpoint { id } } }`, map[string]any{"u": url}, &out)
	return out.CreateWebhookEndpoint.Endpoint.ID, after
}

// verifyWebhooks checks that the endpoint received every alert after the
// one given up to the last, once each after dropping repeats, and nothing
// else, and that its log says each was delivered (none left pending or
// failed).
func (h *harness) verifyWebhooks(r *receiver, partnerKey, endpoint string, after, last uint) {
	h.t.Helper()
	want := map[string]bool{}
	for id := after + 1; id <= last; id++ {
		want[fmt.Sprintf("msg_e%s_a%d", endpoint, id)] = true
	}
	missing := func() (ids []string) {
		got := held(r.received())
		for id := range want {
			if got[id] == 0 {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	// A lease taken before the fault and not recorded runs out (6 attempt
	// timeouts) before its delivery is sent again.
	deadline := time.Now().Add(40 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	var log struct {
		Delivered, Pending, Failed struct{ TotalCount int }
	}
	const q = `query($e: ID!) { delivered: webhookDeliveries(endpointId: $e, status: DELIVERED) { totalCount }
		pending: webhookDeliveries(endpointId: $e, status: PENDING) { totalCount } failed: webhookDeliveries(endpointId: $e, status: FAILED) { totalCount } }`
	for {
		h.must(partnerKey, q, map[string]any{"e": endpoint}, &log)
		if log.Pending.TotalCount == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := missing()
	ids := r.received()
	got := held(ids)
	// Alerts after the last one verify read (numbered since) may arrive too;
	// anything else is a delivery of nothing this endpoint should get.
	unexpected := 0
	for id := range got {
		rest, ok := strings.CutPrefix(id, "msg_e"+endpoint+"_a")
		alert, err := strconv.ParseUint(rest, 10, 64)
		if !ok || err != nil || uint(alert) <= after {
			unexpected++
		}
	}
	h.t.Logf("webhooks: %d alerts to deliver, %d requests received, %d distinct, %d repeats dropped by webhook-id; log: %d delivered, %d pending, %d failed",
		len(want), len(ids), len(got), len(ids)-len(got), log.Delivered.TotalCount, log.Pending.TotalCount, log.Failed.TotalCount)
	if len(m) > 0 || unexpected > 0 {
		h.t.Errorf("webhooks: %d alerts never delivered %v, %d deliveries of nothing raised", len(m), m, unexpected)
	}
	if log.Delivered.TotalCount != len(got) || log.Pending.TotalCount+log.Failed.TotalCount > 0 {
		h.t.Errorf("the delivery log says %d delivered, %d pending, %d failed; the endpoint holds %d", log.Delivered.TotalCount, log.Pending.TotalCount, log.Failed.TotalCount, len(got))
	}
}

// SIGTERM lets a webhook attempt in flight finish and records it before the
// process exits, so that no process sends it again once its lease runs out;
// the deliveries of the same endpoint behind it are not started (each could
// take the attempt timeout) but handed back at once, so that the next
// process sends them without waiting for their leases.
func TestSIGTERMFinishesWebhooksInFlight(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	hook := newReceiver(func(n int) {
		if n == 1 {
			time.Sleep(1500 * time.Millisecond)
		}
	})
	defer hook.Close()
	s := startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...)
	h := newHarness(t, s)
	w := h.setUp(3)
	h.must(w.partner, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, filter: {kinds: [USAGE_THRESHOLD]}}) { secret } }`,
		map[string]any{"u": hook.URL}, nil)
	var events []any
	for i, c := range w.customers { // three alerts at once, for the one endpoint
		events = append(events, map[string]any{"eventId": fmt.Sprint("drain-", i), "customerId": c, "amount": "800"})
	}
	h.must(w.billing, usageOp, map[string]any{"in": map[string]any{"events": events}}, nil)
	hook.waitFor(t, 10*time.Second, "the webhook never came", func(ids []string) bool { return len(ids) > 0 })
	took, err := s.terminate() // mid-attempt
	if err != nil {
		t.Errorf("the server exited with %v:\n%s", err, s.out)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type row struct {
		status, response string
		attempts, logged int
		leased           bool
	}
	deliveries := func() []row {
		rows, err := db.Query("SELECT d.status, d.attempts, d.lease_until IS NOT NULL, COUNT(a.id), COALESCE(MAX(a.response), '') FROM alert_deliveries d" +
			" LEFT JOIN alert_delivery_attempts a ON a.delivery_id = d.id GROUP BY d.id ORDER BY d.id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.status, &r.attempts, &r.leased, &r.logged, &r.response); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	sent := len(hook.received())
	got := deliveries()
	t.Logf("exited %v after SIGTERM; %d webhooks sent; deliveries %+v", took, sent, got)
	if sent != 1 || took > 3*time.Second {
		t.Errorf("after SIGTERM the process sent %d webhooks and took %v to exit; want the one in flight only, answered in 1.5 s", sent, took)
	}
	if len(got) != 3 || got[0] != (row{"DELIVERED", "taken", 1, 1, false}) {
		t.Fatalf("the attempt in flight at SIGTERM is recorded as %+v; want DELIVERED after 1 attempt, answer \"taken\"", got)
	}
	for _, r := range got[1:] {
		if r != (row{status: "PENDING"}) {
			t.Errorf("a delivery not started at SIGTERM is %+v; want PENDING, not attempted, not leased", r)
		}
	}

	startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...)
	hook.waitFor(t, 5*time.Second, "the next process did not send the deliveries handed back within 5 s (their leases last 12 s)",
		func(ids []string) bool { return len(ids) >= 3 })
	time.Sleep(300 * time.Millisecond)
	if ids := hook.received(); len(ids) != 3 || len(held(ids)) != 3 {
		t.Errorf("the endpoint received %v; want each of the three alerts once", ids)
	}
}
