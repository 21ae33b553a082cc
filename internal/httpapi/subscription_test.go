package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/testenv"
)

const subscribeAlerts = `subscription($c: ID, $after: ID) { alerts(customerId: $c, after: $after, kinds: [USAGE_THRESHOLD]) {
	id kind threshold usagePercent used credit available createdAt customer { id used } } }`

// listen opens a WebSocket with key in connection_init and subscribes to alerts.
func listen(t *testing.T, s *testenv.Server, protocol, key string, vars map[string]any) *testenv.WSClient {
	t.Helper()
	c := s.Dial(t, protocol, map[string]any{"Authorization": "Bearer " + key}, nil)
	c.Acked(t)
	c.Subscribe(t, "1", subscribeAlerts, vars)
	return c
}

func nextAlert(t *testing.T, c *testenv.WSClient) alert {
	t.Helper()
	var out struct{ Alerts alert }
	c.NextData(t, 5*time.Second, &out)
	return out.Alerts
}

// listening waits until the server has registered n live subscriptions (a
// subscribe message is handled asynchronously).
func listening(t testing.TB, s *testenv.Server, n int) {
	t.Helper()
	waitFor(t, func() bool { return s.Alerts.Listeners() == n })
}

func TestAlertsSubscription(t *testing.T) {
	for _, protocol := range []string{testenv.TransportWS, testenv.LegacyWS} {
		t.Run(protocol, func(t *testing.T) {
			testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
				s, partner, billing, cust := usageSetup(t, db, "100", false)
				_, rival := s.CreatePartner(t, "Rival", "1000")
				rc := s.CreateCustomer(t, rival, "R", false)
				s.SetCredit(t, rival, rc, "10")

				all := listen(t, s, protocol, partner, nil)
				one := listen(t, s, protocol, partner, map[string]any{"c": cust})
				theirs := listen(t, s, protocol, rival, nil)
				listening(t, s, 3)

				got := record(t, s, billing, event("r1", rc, "10"), event("u1", cust, "95"))
				got.Alerts = usageOnly(got.Alerts)
				if thresholds(got.Alerts) != "75 90 100 75 90" {
					t.Fatalf("raised %q", thresholds(got.Alerts))
				}
				for _, want := range got.Alerts[3:] {
					want.Customer.Used = "95.00" // listeners may read more of the customer than BILLING
					for _, c := range []*testenv.WSClient{all, one} {
						if a := nextAlert(t, c); a != want {
							t.Fatalf("listener got %+v, want %+v", a, want)
						}
					}
				}
				for _, want := range got.Alerts[:3] {
					if a := nextAlert(t, theirs); a.ID != want.ID {
						t.Fatalf("rival got %+v, want %+v", a, want)
					}
				}
				// Nothing of the other partner's reaches a listener.
				all.Quiet(t, 300*time.Millisecond)
				theirs.Quiet(t, 10*time.Millisecond)

				// Closing a subscription from the client ends it cleanly.
				one.Stop(t, "1")
				if m := one.Next(t, 5*time.Second); m.Type != "complete" && protocol == testenv.TransportWS {
					t.Fatalf("after stop: %+v", m)
				}
			})
		})
	}
}

func TestSubscriptionAuthentication(t *testing.T) {
	s, partner, billing, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	for _, protocol := range []string{testenv.TransportWS, testenv.LegacyWS} {
		// No key, a bad key, a revoked-style unknown key: closed with 4401.
		for _, payload := range []map[string]any{nil, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}} {
			c := s.Dial(t, protocol, payload, nil)
			if code := c.CloseCode(t, 5*time.Second); code != 4401 {
				t.Fatalf("%s with %v: close code %d, want 4401", protocol, payload, code)
			}
			// The reason, which clients show, says what to do.
			if r := closeReasonOf(c); !strings.Contains(r, "key") {
				t.Errorf("%s with %v: close reason %q", protocol, payload, r)
			}
		}
		// A key that may not read alerts: 4403.
		c := s.Dial(t, protocol, map[string]any{"Authorization": "Bearer " + billing}, nil)
		if code := c.CloseCode(t, 5*time.Second); code != 4403 {
			t.Fatalf("%s BILLING: close code %d, want 4403", protocol, code)
		}
		if r := closeReasonOf(c); !strings.Contains(r, "BILLING key") {
			t.Errorf("%s BILLING: close reason %q", protocol, r)
		}
		// The upgrade request's header works as well; the payload may spell it in lower case.
		c = s.Dial(t, protocol, nil, http.Header{"Authorization": {"Bearer " + partner}})
		c.Acked(t)
		c = s.Dial(t, protocol, map[string]any{"authorization": "Bearer " + partner}, nil)
		c.Acked(t)
		// Or as headers, as Hasura's clients send them (connectionParams: {headers: {…}}).
		c = s.Dial(t, protocol, map[string]any{"headers": map[string]any{"Authorization": "Bearer " + partner}}, nil)
		c.Acked(t)
		// Browser frontends on other origins may listen.
		c = s.Dial(t, protocol, map[string]any{"Authorization": "Bearer " + partner}, http.Header{"Origin": {"https://app.example"}})
		c.Acked(t)
	}
	// Another partner's customer looks missing.
	_, rival := s.CreatePartner(t, "Rival", "1000")
	c := listen(t, s, testenv.TransportWS, rival, map[string]any{"c": "1"})
	if m := c.Next(t, 5*time.Second); !strings.Contains(string(m.Payload), `"NOT_FOUND"`) {
		t.Fatalf("subscribing to another partner's customer: %s %s", m.Type, m.Payload)
	}
}

func TestSubscriptionResumesAfter(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		first := usageOnly(record(t, s, billing, event("a", cust, "100")).Alerts) // 75, 90, 100
		s.SetCredit(t, partner, cust, "100")                                      // 50 %: re-armed

		// Resuming after the first alert replays the other two, then goes live.
		c := listen(t, s, testenv.TransportWS, partner, map[string]any{"after": first[0].ID})
		for _, want := range first[1:] {
			if a := nextAlert(t, c); a.ID != want.ID {
				t.Fatalf("replayed %+v, want %+v", a, want)
			}
		}
		listening(t, s, 1)
		live := usageOnly(record(t, s, billing, event("b", cust, "50")).Alerts) // 150 of 200: 75
		for _, want := range live {
			// The customer is read afresh for every event, not cached per connection.
			if a := nextAlert(t, c); a.ID != want.ID || a.Customer.Used != "150.00" {
				t.Fatalf("live %+v, want %+v", a, want)
			}
		}
		c.Quiet(t, 300*time.Millisecond)

		// Alerts raised while a listener is away come first on its return.
		s.SetCredit(t, partner, cust, "200") // 100 of 400: 25 %
		away := usageOnly(record(t, s, billing, event("c", cust, "250")).Alerts)
		back := listen(t, s, testenv.LegacyWS, partner, map[string]any{"after": live[len(live)-1].ID})
		for _, want := range away {
			if a := nextAlert(t, back); a.ID != want.ID {
				t.Fatalf("after reconnect %+v, want %+v", a, want)
			}
		}
		back.Quiet(t, 300*time.Millisecond)
	})
}

func TestAlertsOverSSE(t *testing.T) {
	s := testenv.NewServerWith(t, testenv.SQLite(t), httpapi.Services{PingInterval: 200 * time.Millisecond})
	_, partner := s.CreatePartner(t, "Reseller", "1000")
	billing := s.CreateKey(t, "feed", "BILLING", "")
	cust := s.CreateCustomer(t, partner, "Acme", false)
	s.SetCredit(t, partner, cust, "100")
	body := strings.NewReader(`{"query": "subscription { alerts { id threshold } }"}`)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+partner)
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	listening(t, s, 1)
	record(t, s, billing, event("sse", cust, "80"))
	deadline := time.After(5 * time.Second)
	var alerted, pinged bool
	for !alerted || !pinged {
		select {
		case l := <-lines:
			alerted = alerted || strings.HasPrefix(l, "data:") && strings.Contains(l, `"threshold":75`)
			pinged = pinged || l == ": ping" // keeps proxies from closing an idle stream
		case <-deadline:
			t.Fatalf("over SSE: alert %v, keep-alive %v", alerted, pinged)
		}
	}
}

// A client that stops answering pings (a half-open connection) is closed and
// its subscription cleaned up; one that answers stays.
func TestHalfOpenConnectionsAreClosed(t *testing.T) {
	s := testenv.NewServerWith(t, testenv.SQLite(t), httpapi.Services{PingInterval: 200 * time.Millisecond})
	_, partner := s.CreatePartner(t, "Reseller", "1000")

	healthy := listen(t, s, testenv.TransportWS, partner, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
	dead, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{testenv.TransportWS}})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.CloseNow()
	for _, m := range []string{
		`{"type":"connection_init","payload":{"Authorization":"Bearer ` + partner + `"}}`,
		`{"id":"1","type":"subscribe","payload":{"query":"subscription { alerts { id } }"}}`,
	} {
		if err := dead.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return s.Alerts.Listeners() == 2 })
	// The dead client never reads again, so it never answers a ping.
	waitFor(t, func() bool { return s.Alerts.Listeners() == 1 })
	time.Sleep(500 * time.Millisecond)
	if s.Alerts.Listeners() != 1 {
		t.Fatal("the healthy listener was dropped too")
	}
	healthy.Quiet(t, 10*time.Millisecond)
}

// waitFor fails t unless cond holds within 5 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	if !testenv.Eventually(5*time.Second, cond) {
		t.Fatal("condition not met within 5s")
	}
}

// A POST is answered as an event stream only when the client prefers one.
// urql sends every operation accepting JSON first and text/event-stream after
// it; answered as a stream, its queries and mutations came back as events,
// and the client (urql 6 on Node) crashed on the next operation.
func TestEventStreamOnlyWhenPreferred(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	const urql = "application/graphql-response+json, application/graphql-response+json, application/json, text/event-stream, multipart/mixed"
	for _, c := range []struct {
		accept, query, want string
	}{
		{urql, `{ customers(first: 1) { nodes { name } } }`, "application/graphql-response+json"},
		{urql, `mutation { createCustomer(input: {name: "urql"}) { name } }`, "application/graphql-response+json"},
		{"application/json, text/event-stream", `{ viewer { role } }`, "application/json"},
		{"text/event-stream;q=0.5, application/json", `{ viewer { role } }`, "application/json"},
		// urql's subscriptions, graphql-sse's client, and whoever ranks it first.
		{"text/event-stream, multipart/mixed", `{ viewer { role } }`, "text/event-stream"},
		{"text/event-stream", `{ viewer { role } }`, "text/event-stream"},
		{"text/event-stream, application/json", `{ viewer { role } }`, "text/event-stream"},
		{"application/json;q=0.5, text/event-stream", `{ viewer { role } }`, "text/event-stream"},
	} {
		b, _ := json.Marshal(map[string]any{"query": c.query})
		res, body := exchange(t, s, http.MethodPost, "", map[string]string{"Content-Type": "application/json", "Accept": c.accept,
			"Authorization": bearer(partner)}, string(b))
		media, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if media != c.want || res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"data"`)) {
			t.Errorf("Accept: %s, %s: %d %s %s; want %s", c.accept, c.query, res.StatusCode, media, body, c.want)
		}
	}
	// A subscription cannot be answered in JSON: it streams wherever a stream
	// is acceptable at all.
	for _, c := range []struct{ accept, body string }{
		{"application/json, text/event-stream", `{"query": "subscription { alerts { id } }"}`},
		{urql, `{"query": "query A { viewer { role } } subscription B { alerts { id } }", "operationName": "B"}`},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", c.accept)
		req.Header.Set("Authorization", bearer(partner))
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if media, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); media != "text/event-stream" || res.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(res.Body)
			t.Errorf("Accept: %s, %s: %d %s %s; want a stream", c.accept, c.body, res.StatusCode, media, body)
		}
		// Metrics and logs know it as the stream it is.
		if n := value(t, scrape(t, s), "credit_open_connections", map[string]string{"transport": "sse"}); n != 1 {
			t.Errorf("Accept: %s, %s: %v open event streams counted, want 1", c.accept, c.body, n)
		}
		cancel()
		res.Body.Close()
		waitFor(t, func() bool {
			return value(t, scrape(t, s), "credit_open_connections", map[string]string{"transport": "sse"}) == 0
		})
	}
}

// closeReasonOf is the reason of the close frame that ended c.
func closeReasonOf(c *testenv.WSClient) string {
	var ce websocket.CloseError
	errors.As(c.CloseErr, &ce)
	return ce.Reason
}
