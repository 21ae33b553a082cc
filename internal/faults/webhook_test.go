package faults_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/testenv"
)

// A process killed while a webhook attempt is in flight loses nothing: the
// delivery's lease runs out and another process delivers it, and a receiver
// that drops repeats by webhook-id holds it once.
func TestWebhookSurvivesAKilledProcess(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	env := []string{"WEBHOOK_ALLOW_INSECURE=true", "WEBHOOK_ALLOW_PRIVATE=true", "WEBHOOK_TIMEOUT=2s", "WEBHOOK_RETRIES=500ms,500ms,500ms"}
	var mu sync.Mutex
	requests, held := 0, map[string]int{}
	hang := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		first := requests == 1
		mu.Unlock()
		if first {
			<-hang // the first attempt never answers: its sender is killed meanwhile
			return
		}
		mu.Lock()
		held[r.Header.Get("webhook-id")]++
		mu.Unlock()
	}))
	defer hook.Close()
	defer close(hang) // first: Close waits for the hanging handler

	a := startServerOn(t, "MYSQL_DSN="+dsn, env...)
	h := newHarness(t, a)
	w := h.setUp(1)
	h.must(w.partner, `mutation($u: String!) { createWebhookEndpoint(input: {url: $u, filter: {kinds: [USAGE_THRESHOLD]}}) { secret } }`,
		map[string]any{"u": hook.URL}, nil)
	h.must(w.billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
		map[string]any{"in": map[string]any{"events": []any{map[string]any{"eventId": "kill-1", "customerId": w.customers[0], "amount": "800"}}}}, nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := requests
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never came")
		}
	}
	a.kill() // mid-attempt

	startServerOn(t, "MYSQL_DSN="+dsn, env...)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(held)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery was not retried by the other process (%d requests)", requests)
		}
	}
	time.Sleep(time.Second) // nothing more arrives
	mu.Lock()
	defer mu.Unlock()
	for id, n := range held {
		if n != 1 {
			t.Errorf("webhook %s received %d times after the first", id, n)
		}
	}
	t.Logf("%d requests: the killed process's attempt, then the survivor's", requests)
}
