// Package faults_test proves on MySQL what the service guarantees under
// faults: server processes killed mid-load, a database that freezes or goes
// away, a shutdown while requests run. Each test drives real server processes
// with real clients, retries what was not answered with the same idempotency
// keys and event ids, and prints what it sent, what it injected, and what was
// lost or doubled (which must be nothing).
package faults_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	_ "github.com/glebarez/go-sqlite"

	"github.com/cloudreseller/credit/internal/testenv"
)

// Two processes on one MySQL under load; one is killed with SIGKILL and
// restarted. Clients retry every unanswered request on either process; both
// processes deliver webhooks, and the killed one's deliveries in flight are
// made by the other or by itself once restarted.
func TestRestartUnderLoad(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	hook := newDelayingReceiver()
	defer hook.Close()
	a, b := startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...), startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...)
	h := newHarness(t, a, b)
	w := h.setUp(10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listeners := []*listener{h.listen(ctx, w.partner, 0), h.listen(ctx, w.partner, 1)}
	endpoint, after := h.hookAll(ctx, dsn, w.partner, hook.URL)

	stop, done := make(chan struct{}), make(chan struct{})
	go func() { h.load(w, 8, stop); close(done) }()
	time.Sleep(1500 * time.Millisecond)
	a.kill()
	time.Sleep(time.Second)
	a.start()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	<-done

	v := h.verify(ctx, dsn, listeners...)
	h.report("SIGKILL of one of two processes mid-load, restarted 1 s later", v)
	h.verifyWebhooks(hook, w.partner, endpoint, after, uint(v.alerts))
	for i, l := range listeners {
		t.Logf("listener %d connected %d times", i, l.resumes)
	}
}

// probe sends a read that needs the store and returns its code ("" for
// success) and how long the answer took.
func probe(h *harness, s *server, key string) (string, time.Duration) {
	start := time.Now()
	r, err := h.post(s.url(), key, `{ customers { totalCount } }`, nil)
	took := time.Since(start)
	switch {
	case err != nil:
		return "NO ANSWER: " + err.Error(), took
	case len(r.Errors) > 0:
		return r.Errors[0].Extensions.Code, took
	}
	return "", took
}

func status(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// duringFault probes the server every 200 ms for d: every request must fail
// fast with SERVICE_UNAVAILABLE, the process stays alive and says it is not
// ready.
func duringFault(t *testing.T, h *harness, s *server, key string, d time.Duration) (probes int, slowest time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		code, took := probe(h, s, key)
		probes++
		slowest = max(slowest, took)
		if code != "SERVICE_UNAVAILABLE" {
			t.Errorf("during the fault a request answered %q after %v, want SERVICE_UNAVAILABLE", code, took)
		}
		if took > 2500*time.Millisecond {
			t.Errorf("during the fault a request took %v to fail", took)
		}
		if got := status(t, s.url()+"/healthz"); got != 200 {
			t.Errorf("healthz during the fault: %d", got)
		}
		if got := status(t, s.url()+"/readyz"); got != 503 {
			t.Errorf("readyz during the fault: %d", got)
		}
	}
	return probes, slowest
}

// recovers waits until the server answers again by itself.
func recovers(t *testing.T, h *harness, s *server, key string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if code, _ := probe(h, s, key); code == "" {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the server did not recover:\n%s", s.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A database that stops answering without dropping connections (SIGSTOP for
// 6 s) makes requests fail fast, not hang; afterwards the server recovers by
// itself and nothing is lost.
func TestDatabaseFreeze(t *testing.T) {
	databaseFault(t, "database frozen (SIGSTOP) for 6 s under load", 6*time.Second,
		(*mariadb).freeze, (*mariadb).thaw)
}

// MySQL stops for 10 s under load: requests fail fast with
// SERVICE_UNAVAILABLE, the process stays alive but not ready; when the
// database returns the server recovers by itself, alerts flow again, and
// nothing is lost.
func TestDatabaseOutage(t *testing.T) {
	databaseFault(t, "MySQL stopped for 10 s under load, then restarted", 10*time.Second,
		(*mariadb).stop, func(m *mariadb) { m.start() })
}

// databaseFault runs one server on a MariaDB of the test's own under load,
// with a listener; it breaks the database for d, checking that requests fail
// fast meanwhile, mends it, and checks that the server recovers by itself and
// that nothing was lost or doubled.
func databaseFault(t *testing.T, what string, d time.Duration, breakIt, mend func(*mariadb)) {
	m := startMariaDB(t)
	dsn := m.dsn("credit")
	hook := newDelayingReceiver()
	defer hook.Close()
	s := startServerOn(t, "MYSQL_DSN="+dsn, deliveryEnv...)
	h := newHarness(t, s)
	w := h.setUp(10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listeners := []*listener{h.listen(ctx, w.partner, 0)}
	endpoint, after := h.hookAll(ctx, dsn, w.partner, hook.URL)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { h.load(w, 4, stop); close(done) }()
	time.Sleep(time.Second)

	breakIt(m)
	probes, slowest := duringFault(t, h, s, w.partner, d)
	mend(m)
	back := recovers(t, h, s, w.partner)
	time.Sleep(1500 * time.Millisecond) // alerts raised after the fault, too
	close(stop)
	<-done
	if got := status(t, s.url()+"/readyz"); got != 200 {
		t.Errorf("readyz after the fault: %d", got)
	}
	// Failures that repeat are logged once per state change (and a reminder
	// a minute), not once per poll or request.
	for _, repeating := range []string{"alerts tail: poll failed", "store unavailable", "keys: revocation check failed"} {
		if n := strings.Count(s.out.String(), repeating); n > 2 {
			t.Errorf("%q logged %d times during one fault", repeating, n)
		}
	}
	t.Logf("%s: %d probes during the fault, slowest failure %v; answering again %v after", what, probes, slowest, back)
	v := h.verify(ctx, dsn, listeners...)
	h.report(what, v)
	h.verifyWebhooks(hook, w.partner, endpoint, after, uint(v.alerts))
}

// SIGTERM drains: a mutation running at SIGTERM commits and gets its answer,
// WebSocket listeners get close code 1001, and the process exits promptly.
// Before, shutdown cancelled every request at once: the change was rolled
// back and its client got an error.
func TestSIGTERMDrains(t *testing.T) {
	t.Run("mysql", func(t *testing.T) {
		dsn := testenv.MySQLDSN(t)
		drains(t, startServer(t, dsn), func(ctx context.Context) (release func()) {
			// Hold the partner's row from outside: the change waits for it.
			raw, err := sql.Open("mysql", dsn)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := raw.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("SELECT id FROM partners FOR UPDATE"); err != nil {
				t.Fatal(err)
			}
			return func() { tx.Commit(); raw.Close() }
		}, func() string {
			raw, _ := sql.Open("mysql", dsn)
			defer raw.Close()
			var credit string
			raw.QueryRow("SELECT credit FROM customers").Scan(&credit)
			return credit
		})
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "credit.db")
		open := func() *sql.DB {
			raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}
		drains(t, startServerOn(t, "SQLITE_PATH="+path), func(ctx context.Context) (release func()) {
			// Hold the database's write lock from outside: the change waits for it.
			raw := open()
			conn, err := raw.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
			return func() { conn.ExecContext(ctx, "COMMIT"); conn.Close(); raw.Close() }
		}, func() string {
			raw := open()
			defer raw.Close()
			var credit string
			raw.QueryRow("SELECT credit FROM customers").Scan(&credit)
			return credit
		})
	})
}

// drains runs the SIGTERM scenario on s: hold keeps a change waiting until
// the release it returns is called; credit reads the customer's credit.
func drains(t *testing.T, s *server, hold func(context.Context) func(), credit func() string) {
	h := newHarness(t, s)
	w := h.setUp(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url(), "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + w.partner}})
	wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { alerts { id } }`}})
	closed := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			var m json.RawMessage
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				closed <- websocket.CloseStatus(err)
				return
			}
		}
	}()

	stream := sseLines(t, ctx, s.url(), w.partner)

	release := hold(ctx)
	answer := make(chan gqlResponse, 1)
	go func() {
		r, err := h.post(s.url(), w.partner, setCreditOp, map[string]any{"in": map[string]any{
			"customerId": w.customers[0], "amount": "5", "idempotencyKey": "in-flight"}})
		if err != nil {
			t.Errorf("the request in flight at SIGTERM got no answer: %v", err)
		}
		answer <- r
	}()
	time.Sleep(300 * time.Millisecond)
	exited := make(chan time.Duration, 1)
	go func() { took, _ := s.terminate(); exited <- took }()
	time.Sleep(300 * time.Millisecond)
	release() // the change in flight may go on now

	if r := <-answer; len(r.Errors) > 0 {
		t.Fatalf("the change in flight at SIGTERM failed: %+v", r.Errors)
	}
	select {
	case code := <-closed:
		if code != 1001 {
			t.Errorf("listener closed with %d, want 1001 (going away)", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("the listener was not closed")
	}
	var said []string
	for line := range stream {
		said = append(said, line)
	}
	if !strings.Contains(strings.Join(said, "\n"), "SHUTTING_DOWN") {
		t.Errorf("the event stream ended without saying SHUTTING_DOWN: %q", said)
	}
	took := <-exited
	if took > 10*time.Second {
		t.Errorf("exit took %v", took)
	}
	if s.exitErr != nil {
		t.Errorf("exit: %v\n%s", s.exitErr, s.out)
	}
	if got := credit(); got != "100500" {
		t.Errorf("credit after the drained change: %s minor units, want 100500", got)
	}
	t.Logf("SIGTERM with a change in flight: it committed and answered; WebSocket listener closed with 1001, event stream ended with SHUTTING_DOWN; exited in %v", took)
}

// sseLines subscribes to alerts over server-sent events and returns the
// stream's lines (the channel closes when the stream ends).
func sseLines(t *testing.T, ctx context.Context, base, key string) <-chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", strings.NewReader(`{"query":"subscription { alerts { id } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}
