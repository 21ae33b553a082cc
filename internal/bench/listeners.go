package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// listenerCount is how many WebSocket listeners the listeners section opens.
const listenerCount = 10_000

// listenerRow is what one listener run measured.
type listenerRow struct {
	name                   string
	listeners, received    int
	rssMiB                 float64
	idleCPU                float64 // share of one core
	fanP50, fanP99, fanMax time.Duration
}

// listeners opens listenerCount alert subscriptions on the server and
// measures its memory, its CPU while they idle, and how fast one alert
// reaches all of them; once selecting only the alert, once its customer too.
func (e *env) listeners(ctx context.Context) ([]listenerRow, error) {
	// A key serves at most keys.MaxSubscriptionsPerKey subscriptions on a
	// process: the listeners share 50 keys of the partner.
	var listenKeys []string
	for range listenerCount / 200 {
		k, err := e.createKey(ctx, "PARTNER", e.partnerIDs[0])
		if err != nil {
			return nil, err
		}
		listenKeys = append(listenKeys, k)
	}
	cust, err := e.createCustomer(ctx, 0, 99999)
	if err != nil {
		return nil, err
	}
	var rows []listenerRow
	for i, sel := range []string{"id threshold", "id threshold customer { id name }"} {
		r, err := e.listenRun(ctx, listenKeys, cust, sel, i)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (e *env) listenRun(ctx context.Context, keys []string, cust int64, selection string, run int) (listenerRow, error) {
	r := listenerRow{name: "alerts(kinds: [USAGE_THRESHOLD]) { " + selection + " }", listeners: listenerCount}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		received atomic.Int64
		mu       sync.Mutex
		arrivals []time.Time
		wg       sync.WaitGroup
		opened   atomic.Int64
		refused  atomic.Int64
	)
	url := "ws" + strings.TrimPrefix(e.url, "http") + "/graphql"
	dial := make(chan struct{}, 200) // connections opened at once
	for n := range listenerCount {
		key := keys[n%len(keys)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			dial <- struct{}{}
			conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
			<-dial
			if err != nil {
				return
			}
			defer conn.CloseNow()
			wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + key}})
			wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
				"query": "subscription { alerts(kinds: [USAGE_THRESHOLD]) { " + selection + " } }"}})
			opened.Add(1)
			for {
				var m struct {
					Type    string
					Payload struct {
						Data   *struct{ Alerts any }
						Errors []any
					}
				}
				if err := wsjson.Read(ctx, conn, &m); err != nil {
					return
				}
				switch {
				case m.Type == "ping":
					wsjson.Write(ctx, conn, map[string]any{"type": "pong"})
				case m.Type == "next" && m.Payload.Data != nil && m.Payload.Data.Alerts != nil:
					now := time.Now()
					received.Add(1)
					mu.Lock()
					arrivals = append(arrivals, now)
					mu.Unlock()
				case m.Type == "next" || m.Type == "error":
					refused.Add(1)
					return
				}
			}
		}()
	}
	for deadline := time.Now().Add(2 * time.Minute); opened.Load() < listenerCount; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("only %d of %d listeners connected", opened.Load(), listenerCount)
		}
	}
	time.Sleep(5 * time.Second) // the last subscriptions registered, start-up work done
	if n := refused.Load(); n > 0 {
		return r, fmt.Errorf("%d subscriptions were refused", n)
	}
	r.rssMiB = rssMiB(e.server.Process.Pid)
	before := cpuSeconds(e.server.Process.Pid)
	// A whole ping interval (httpapi.DefaultPingInterval): every connection
	// is pinged once and answers.
	const idle = 20 * time.Second
	time.Sleep(idle)
	r.idleCPU = (cpuSeconds(e.server.Process.Pid) - before) / idle.Seconds()

	// One alert: usage that takes the customer (1,000,000.00 of credit) from
	// below 75 % to 80 %; a later run first doubles its credit (back to 40 %).
	if run > 0 {
		if err := e.gql(ctx, e.partnerKeys[0], `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "1000000"}) { allocation { id } } }`,
			map[string]any{"c": fmt.Sprint(cust)}, nil); err != nil {
			return r, err
		}
	}
	var usage struct {
		RecordUsage struct{ Alerts []struct{ ID string } }
	}
	sent := time.Now()
	if err := e.gql(ctx, e.billingKey, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { alerts { id } } }`,
		map[string]any{"in": map[string]any{"events": []any{map[string]any{
			"eventId": fmt.Sprintf("fanout-%d-%d", cust, run), "customerId": fmt.Sprint(cust), "amount": "800000"}}}}, &usage); err != nil {
		return r, err
	}
	if len(usage.RecordUsage.Alerts) != 1 {
		return r, fmt.Errorf("the fan-out usage raised %d alerts, want 1", len(usage.RecordUsage.Alerts))
	}
	for deadline := time.Now().Add(10 * time.Second); received.Load() < listenerCount && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	delays := make([]time.Duration, len(arrivals))
	for i, t := range arrivals {
		delays[i] = t.Sub(sent)
	}
	mu.Unlock()
	r.received = len(delays)
	if len(delays) > 0 {
		slices.Sort(delays)
		r.fanP50, r.fanP99, r.fanMax = delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1]
	}
	cancel()
	wg.Wait()
	return r, nil
}

// rssMiB is a process's resident memory.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the CPU time a process has used (user and system).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // clock ticks (USER_HZ is 100 on Linux)
}

func printListeners(w io.Writer, rows []listenerRow) {
	fmt.Fprintf(w, "\n%d WebSocket listeners on one server process\n\n", listenerCount)
	fmt.Fprintf(w, "| subscription | connected | server RSS | idle CPU (one core) | one alert to all: p50 / p99 / max | received |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| `%s` | %d | %.0f MiB (target ≤ 1024) | %.1f %% (target ≤ 10) | %s / %s / %s (target ≤ 2 s) | %d |\n",
			r.name, r.listeners, r.rssMiB, r.idleCPU*100, ms(r.fanP50), ms(r.fanP99), ms(r.fanMax), r.received)
	}
}
