package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/reconcile"
	"github.com/cloudreseller/credit/internal/testenv"
)

// refusals are the codes that answer a request for good: the change was
// refused and will be refused again. Anything else (no answer, a 5xx,
// SERVICE_UNAVAILABLE) leaves the outcome open, and the client retries with
// the same idempotency key or event ids.
var refusals = map[string]bool{
	"INSUFFICIENT_AVAILABLE_CREDIT": true, "PARTNER_CREDIT_EXCEEDED": true,
	"IDEMPOTENCY_CONFLICT": true, "BAD_USER_INPUT": true, "NOT_FOUND": true,
}

// gqlResponse is a GraphQL response.
type gqlResponse struct {
	Data   json.RawMessage
	Errors []struct {
		Message    string
		Extensions struct{ Code string }
	}
}

// harness drives servers as clients would, and counts what happened.
type harness struct {
	t       *testing.T
	servers []*server
	http    *http.Client

	sent, retried, internal atomic.Int64
	slowest                 atomic.Int64 // nanoseconds of the slowest failed answer
	mu                      sync.Mutex
	issued                  map[string]bool // operations sent: idempotency keys, usage batch ids
	applied                 map[string]bool // operations confirmed
	refused                 map[string]bool
}

func newHarness(t *testing.T, servers ...*server) *harness {
	return &harness{t: t, servers: servers, http: &http.Client{Timeout: 5 * time.Second},
		issued: map[string]bool{}, applied: map[string]bool{}, refused: map[string]bool{}}
}

// post sends one operation to a server. It returns the response, or an error
// when there was no GraphQL answer at all.
func (h *harness) post(base, key, query string, vars map[string]any) (gqlResponse, error) {
	var out gqlResponse
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	h.sent.Add(1)
	res, err := h.http.Do(req)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("HTTP %d: %.200s", res.StatusCode, raw)
	}
	return out, nil
}

// must sends an operation to the first server and fails the test on any error.
func (h *harness) must(key, query string, vars map[string]any, dest any) {
	h.t.Helper()
	r, err := h.post(h.servers[0].url(), key, query, vars)
	if err != nil || len(r.Errors) > 0 {
		h.t.Fatalf("%s: %v %+v", query, err, r.Errors)
	}
	if dest != nil {
		if err := json.Unmarshal(r.Data, dest); err != nil {
			h.t.Fatal(err)
		}
	}
}

// settle sends an operation until it is answered for good, trying the
// servers in turn; id names it (its idempotency key or first event id). It
// gives up at the deadline and leaves the operation unsettled.
func (h *harness) settle(id, key, query string, vars map[string]any, deadline time.Time) {
	h.record(h.issued, id)
	for i := 0; time.Now().Before(deadline); i++ {
		start := time.Now()
		r, err := h.post(h.servers[i%len(h.servers)].url(), key, query, vars)
		code := ""
		if err == nil && len(r.Errors) > 0 {
			code = r.Errors[0].Extensions.Code
		}
		switch {
		case err == nil && code == "":
			h.record(h.applied, id)
			return
		case refusals[code]:
			h.record(h.refused, id)
			return
		case code == "INTERNAL_SERVER_ERROR":
			h.internal.Add(1)
			h.t.Logf("internal error for %s: %s", id, r.Errors[0].Message)
		}
		if err == nil && code == "SERVICE_UNAVAILABLE" {
			if d := time.Since(start); int64(d) > h.slowest.Load() {
				h.slowest.Store(int64(d))
			}
		}
		h.retried.Add(1)
		time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
	}
}

func (h *harness) record(set map[string]bool, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set[id] = true
}

// world is a partner with customers, the keys to work on them, and listeners.
type world struct {
	partner, billing string
	customers        []string
}

func (h *harness) setUp(customers int) world {
	var w world
	var p struct{ CreatePartner struct{ ID string } }
	h.must(testenv.AdminToken, `mutation { createPartner(input: {name: "Reseller", creditLine: "100000000"}) { id } }`, nil, &p)
	key := func(role, partner string) string {
		in := map[string]any{"name": role + partner, "role": role}
		if partner != "" {
			in["partnerId"] = partner
		}
		var k struct {
			CreateAPIKey struct{ Key string } `json:"createApiKey"`
		}
		h.must(testenv.AdminToken, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { key } }`, map[string]any{"in": in}, &k)
		return k.CreateAPIKey.Key
	}
	w.partner, w.billing = key("PARTNER", p.CreatePartner.ID), key("BILLING", "")
	for i := range customers {
		var c struct{ CreateCustomer struct{ ID string } }
		h.must(w.partner, `mutation($n: String!) { createCustomer(input: {name: $n}) { id } }`, map[string]any{"n": fmt.Sprint("C", i)}, &c)
		h.must(w.partner, `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "1000"}) { allocation { id } } }`, map[string]any{"c": c.CreateCustomer.ID}, nil)
		w.customers = append(w.customers, c.CreateCustomer.ID)
	}
	return w
}

const (
	setCreditOp = `mutation($in: SetCreditInput!) { setCredit(input: $in) { allocation { id } } }`
	withdrawOp  = `mutation($in: WithdrawCreditInput!) { withdrawCredit(input: $in) { allocation { id } } }`
	usageOp     = `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted duplicates } }`
)

// load runs workers that send credit changes (with idempotency keys) and
// usage (with fixed event ids) until stop is closed, each retried until
// answered for good; then it settles what is still open.
func (h *harness) load(w world, workers int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for n := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cust := w.customers[rand.IntN(len(w.customers))]
				id := fmt.Sprintf("c%d-%d", n, i) // a credit change's idempotency key
				deadline := time.Now().Add(60 * time.Second)
				switch i % 4 {
				case 0:
					h.settle(id, w.partner, setCreditOp, map[string]any{"in": map[string]any{
						"customerId": cust, "amount": "100", "idempotencyKey": id}}, deadline)
				case 1:
					h.settle(id, w.partner, setCreditOp, map[string]any{"in": map[string]any{
						"customerId": cust, "amount": "-7", "idempotencyKey": id}}, deadline)
				case 2:
					h.settle(id, w.partner, withdrawOp, map[string]any{"in": map[string]any{
						"customerId": cust, "amount": "3", "idempotencyKey": id}}, deadline)
				default:
					id = fmt.Sprintf("u%d-%d", n, i) // a usage batch: its events are id-e0 … id-e4
					var events []any
					for e := range 5 {
						events = append(events, map[string]any{"eventId": fmt.Sprintf("%s-e%d", id, e),
							"customerId": w.customers[(i+e)%len(w.customers)], "amount": "45"})
					}
					h.settle(id, w.billing, usageOp, map[string]any{"in": map[string]any{"events": events}}, deadline)
				}
			}
		}()
	}
	wg.Wait()
}

// listener is an alert subscription that resumes with `after` whenever its
// connection ends, on whichever server answers.
type listener struct {
	mu       sync.Mutex
	ids      []uint64
	resumes  int
	closeErr []string
}

func (h *harness) listen(ctx context.Context, key string, first int) *listener {
	l := &listener{}
	go func() {
		for i := first; ctx.Err() == nil; i++ {
			l.session(ctx, h.servers[i%len(h.servers)].url(), key)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return l
}

// last is the id to resume after: "0" at first, so that the listener gets
// every alert, those of the setup included.
func (l *listener) last() *string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) == 0 {
		zero := "0"
		return &zero
	}
	s := fmt.Sprint(l.ids[len(l.ids)-1])
	return &s
}

// session listens over one connection until it ends.
func (l *listener) session(ctx context.Context, base, key string) {
	dial, cancel := context.WithTimeout(ctx, 3*time.Second)
	conn, _, err := websocket.Dial(dial, "ws"+strings.TrimPrefix(base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	cancel()
	if err != nil {
		return
	}
	defer conn.CloseNow()
	l.mu.Lock()
	l.resumes++
	l.mu.Unlock()
	wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + key}})
	wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($after: ID) { alerts(after: $after) { id } }`, "variables": map[string]any{"after": l.last()}}})
	for {
		var m struct {
			Type    string
			Payload json.RawMessage
		}
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			l.mu.Lock()
			l.closeErr = append(l.closeErr, err.Error())
			l.mu.Unlock()
			return
		}
		switch m.Type {
		case "ping":
			wsjson.Write(ctx, conn, map[string]any{"type": "pong"})
		case "next":
			var p struct {
				Data struct{ Alerts struct{ ID string } }
			}
			json.Unmarshal(m.Payload, &p)
			var id uint64
			fmt.Sscan(p.Data.Alerts.ID, &id)
			l.mu.Lock()
			l.ids = append(l.ids, id)
			l.mu.Unlock()
		case "error", "complete":
			return
		}
	}
}

// verdict is what a fault test checks at the end: every confirmed change
// applied once, no refused one applied, every alert raised once and received
// once by each listener, in order, and the store reconciled.
type verdict struct {
	lost, doubled, phantom, unsettled int
	alerts                            int
	missing, repeated                 []int
}

func (h *harness) verify(ctx context.Context, dsn string, listeners ...*listener) verdict {
	h.t.Helper()
	db, err := database.Open(ctx, database.Config{MySQLDSN: dsn})
	if err != nil {
		h.t.Fatal(err)
	}
	defer database.Close(db)
	var v verdict
	count := map[string]int{}
	var keys []string
	db.Raw("SELECT idempotency_key FROM credit_allocations WHERE idempotency_key IS NOT NULL").Scan(&keys)
	var events []string
	db.Raw("SELECT event_id FROM usage_events").Scan(&events)
	for _, k := range keys {
		count[k]++
	}
	for _, e := range events {
		count[e[:strings.LastIndex(e, "-e")]]++ // a batch's events share its id
	}
	h.mu.Lock()
	for id := range h.issued {
		n, per := count[id], 1
		if strings.HasPrefix(id, "u") {
			per = 5
		}
		switch {
		case h.applied[id] && n < per:
			v.lost++
		case h.applied[id] && n > per:
			v.doubled++
		case h.refused[id] && n > 0:
			v.phantom++
		case !h.applied[id] && !h.refused[id]:
			v.unsettled++
		}
	}
	h.mu.Unlock()

	var last uint64
	db.Raw("SELECT COALESCE(MAX(id), 0) FROM alerts").Scan(&last)
	v.alerts = int(last)
	// Wait for the listeners to catch up, then compare.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		caught := true
		for _, l := range listeners {
			l.mu.Lock()
			caught = caught && len(l.ids) > 0 && l.ids[len(l.ids)-1] >= last
			l.mu.Unlock()
		}
		if caught {
			break
		}
	}
	for _, l := range listeners {
		l.mu.Lock()
		got := slices.Clone(l.ids)
		l.mu.Unlock()
		seen := map[uint64]int{}
		for _, id := range got {
			seen[id]++
		}
		missing, repeated := 0, 0
		for id := uint64(1); id <= last; id++ {
			if seen[id] == 0 {
				missing++
			}
			if seen[id] > 1 {
				repeated += seen[id] - 1
			}
		}
		if !slices.IsSorted(got) {
			h.t.Errorf("a listener received alerts out of order")
		}
		v.missing, v.repeated = append(v.missing, missing), append(v.repeated, repeated)
	}

	r, err := reconcile.Run(ctx, db)
	if err != nil {
		h.t.Fatal(err)
	}
	var out strings.Builder
	r.Print(&out)
	h.t.Logf("reconcile: %s", out.String())
	if !r.Clean() {
		h.t.Errorf("reconcile found drift")
	}
	return v
}

// report prints the figures and fails the test on any loss or double.
func (h *harness) report(faults string, v verdict) {
	h.t.Helper()
	h.t.Logf("requests sent %d (retried %d), faults injected: %s; changes lost %d, applied twice %d, refused yet applied %d, unsettled %d; alerts %d, missing per listener %v, doubled per listener %v; internal errors %d",
		h.sent.Load(), h.retried.Load(), faults, v.lost, v.doubled, v.phantom, v.unsettled, v.alerts, v.missing, v.repeated, h.internal.Load())
	if v.lost+v.doubled+v.phantom+v.unsettled != 0 || h.internal.Load() != 0 {
		h.t.Errorf("changes were lost, doubled or left unanswered")
		for i, s := range h.servers {
			for _, line := range strings.Split(s.out.String(), "\n") {
				if strings.Contains(line, "ERROR") {
					h.t.Logf("server %d: %s", i, line)
				}
			}
		}
	}
	for i := range v.missing {
		if v.missing[i] != 0 || v.repeated[i] != 0 {
			h.t.Errorf("listener %d: %d alerts missing, %d doubled", i, v.missing[i], v.repeated[i])
		}
	}
}
