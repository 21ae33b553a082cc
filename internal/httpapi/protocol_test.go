package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/testenv"
)

// exchange sends a raw request to /graphql (target: "" or "?…") with the
// headers that are not empty, and returns the response and its body.
func exchange(t *testing.T, s *testenv.Server, method, target string, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, s.URL+"/graphql"+target, strings.NewReader(body))
	for k, v := range header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res, raw
}

// do sends a raw HTTP request to /graphql and decodes the GraphQL errors.
func do(t *testing.T, s *testenv.Server, method, contentType, accept, key, body string) (int, testenv.Response) {
	t.Helper()
	res, raw := exchange(t, s, method, "", map[string]string{"Content-Type": contentType, "Accept": accept, "Authorization": bearer(key)}, body)
	return res.StatusCode, decoded(t, res, raw)
}

// bearer is the Authorization header of a key ("" for none).
func bearer(key string) string {
	if key == "" {
		return ""
	}
	return "Bearer " + key
}

// decoded is a GraphQL answer's body, which must be JSON.
func decoded(t *testing.T, res *http.Response, raw []byte) testenv.Response {
	t.Helper()
	var out testenv.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: not JSON (%d): %s", res.Request.Method, res.Request.URL, res.StatusCode, raw)
	}
	out.Status = res.StatusCode
	return out
}

// Every error has extensions.code, also those raised before execution.
func TestRequestErrorsCarryCodes(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	for _, c := range []struct {
		name, method, contentType, body string
		status                          int
		code                            string
	}{
		{"form body", http.MethodPost, "application/x-www-form-urlencoded", "query={viewer{role}}", 415, "BAD_REQUEST"},
		{"text body", http.MethodPost, "text/plain", `{"query":"{ viewer { role } }"}`, 415, "BAD_REQUEST"},
		{"PUT", http.MethodPut, "application/json", `{"query":"{ viewer { role } }"}`, 405, "BAD_REQUEST"},
		{"DELETE", http.MethodDelete, "", "", 405, "BAD_REQUEST"},
		// A body that is not a GraphQL request in JSON: 400, as the spec asks
		// of application/json too; a document that does not parse: 200.
		{"body not JSON", http.MethodPost, "application/json", `{"query": `, 400, "GRAPHQL_PARSE_FAILED"},
		{"query not a string", http.MethodPost, "application/json", `{"query": 1}`, 400, "GRAPHQL_PARSE_FAILED"},
		{"document does not parse", http.MethodPost, "application/json", `{"query": "{ viewer { "}`, 200, "GRAPHQL_PARSE_FAILED"},
		// Apollo's BatchHttpLink: told that batching is not offered.
		{"batch", http.MethodPost, "application/json", ` [{"query":"{ viewer { role } }"}, {"query":"{ viewer { role } }"}]`, 400, "BAD_REQUEST"},
		// A subscription over plain POST would wait for the next alert: refused at once.
		{"subscription over POST", http.MethodPost, "application/json", `{"query":"subscription { alerts { id } }"}`, 200, "STREAMING_TRANSPORT_REQUIRED"},
	} {
		status, r := do(t, s, c.method, c.contentType, "", partner, c.body)
		if status != c.status || len(r.Errors) != 1 || r.Errors[0].Code() != c.code || r.Errors[0].Message == "" {
			t.Errorf("%s: %d %+v, want %d %s", c.name, status, r.Errors, c.status, c.code)
		}
	}
	// A GET whose parameters do not decode.
	for _, params := range []string{"query=%7Bviewer%7Brole%7D%7D&variables=notjson", "query=%7Bviewer%7Brole%7D%7D&extensions=%5B",
		"query=%zz"} {
		res, raw := exchange(t, s, http.MethodGet, "?"+params, map[string]string{"Authorization": bearer(partner)}, "")
		if out := decoded(t, res, raw); out.Status != 400 || len(out.Errors) != 1 || out.Errors[0].Code() != "BAD_REQUEST" ||
			out.Errors[0].Extensions["requestId"] == nil {
			t.Errorf("GET ?%s: %d %s", params, res.StatusCode, raw)
		}
	}
	for _, q := range []string{`mutation { createCustomer(input: {name: "x"}) { id } }`, `subscription { alerts { id } }`} {
		res, err := http.Get(s.URL + "/graphql?query=" + url.QueryEscape(q))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var out testenv.Response
		if json.Unmarshal(raw, &out) != nil || res.StatusCode != 405 || len(out.Errors) != 1 || out.Errors[0].Code() != "BAD_REQUEST" {
			t.Errorf("GET %s: %d %s", q, res.StatusCode, raw)
		}
	}
}

// WebSocket protocol errors close with graphql-transport-ws's codes.
func TestWebSocketProtocolErrors(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	raw := func(msgs ...string) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql",
			&websocket.DialOptions{Subprotocols: []string{testenv.TransportWS}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		for _, m := range msgs {
			conn.Write(ctx, websocket.MessageText, []byte(m))
		}
		return conn
	}
	closeCode := func(conn *websocket.Conn) websocket.StatusCode {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				return websocket.CloseStatus(err)
			}
		}
	}
	init := `{"type":"connection_init","payload":{"Authorization":"Bearer ` + partner + `"}}`
	sub := `{"id":"a","type":"subscribe","payload":{"query":"subscription { alerts { id } }"}}`
	for name, c := range map[string]struct {
		msgs []string
		code websocket.StatusCode
	}{
		"not JSON":         {[]string{init, `{nope`}, 4400},
		"no type":          {[]string{init, `{"id":"1"}`}, 4400},
		"duplicate id":     {[]string{init, sub, sub}, 4409},
		"not JSON at init": {[]string{`hello`}, 4400},
		"subscribe first":  {[]string{sub}, 4401},
		"second init":      {[]string{init, init}, 4429},
	} {
		if got := closeCode(raw(c.msgs...)); got != c.code {
			t.Errorf("%s: close code %d, want %d", name, got, c.code)
		}
	}
	// A client that never sends connection_init is closed with 4408.
	slow := testenv.NewServerWith(t, s.DB, httpapi.Services{InitTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	silent, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(slow.URL, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{testenv.TransportWS}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	if got := closeCode(silent); got != 4408 {
		t.Errorf("no connection_init: close code %d, want 4408", got)
	}

	// An id can be used again once its operation is over.
	c := s.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
	c.Acked(t)
	for range 2 {
		c.Subscribe(t, "q", `{ viewer { role } }`, nil)
		if m := c.Next(t, 5*time.Second); m.Type != "next" {
			t.Fatalf("query over the socket: %s %s", m.Type, m.Payload)
		}
		if m := c.Next(t, 5*time.Second); m.Type != "complete" {
			t.Fatalf("after the query: %s %s", m.Type, m.Payload)
		}
	}
}

// Subscriptions per connection are bounded.
func TestSubscriptionLimits(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	c := s.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
	c.Acked(t)
	for i := range keys.MaxSubscriptionsPerSession {
		c.Subscribe(t, fmt.Sprint(i), `subscription { alerts(kinds: [USAGE_THRESHOLD]) { id } }`, nil)
	}
	listening(t, s, keys.MaxSubscriptionsPerSession)
	c.Subscribe(t, "one-too-many", `subscription { alerts { id } }`, nil)
	m := c.Next(t, 5*time.Second)
	if m.ID != "one-too-many" || !strings.Contains(string(m.Payload), "TOO_MANY_SUBSCRIPTIONS") {
		t.Fatalf("subscription %d: %s %s %s", keys.MaxSubscriptionsPerSession+1, m.ID, m.Type, m.Payload)
	}
	// Ending one makes room for another.
	c.Stop(t, "0")
	listening(t, s, keys.MaxSubscriptionsPerSession-1)
	c.Subscribe(t, "room", `subscription { alerts { id } }`, nil)
	listening(t, s, keys.MaxSubscriptionsPerSession)
}

// A store that fails while a key is checked is an outage, not a bad key:
// clients are told to retry, not to get a new key, and see no driver text.
func TestOutageIsNotABadKey(t *testing.T) {
	db := testenv.SQLite(t)
	s, partner, _, _ := usageSetup(t, db, "100", false)
	time.Sleep(keys.DefaultCacheTTL + 100*time.Millisecond) // the key's look-up is no longer cached
	database.Close(db)

	c := s.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
	var said []string
	for m := range c.Messages() {
		said = append(said, string(m.Payload))
	}
	if code := websocket.CloseStatus(c.CloseErr); code != 4500 {
		t.Fatalf("sign-in with the store down: close code %d, want 4500 (said %v)", code, said)
	}
	for _, leak := range []string{"sql", "closed", "database is"} {
		if strings.Contains(strings.Join(said, " ")+c.CloseErr.Error(), leak) {
			t.Fatalf("the client was told %q: %v %v", leak, said, c.CloseErr)
		}
	}
	r := s.Post(t, partner, `{ viewer { role } }`, nil)
	if len(r.Errors) != 1 || r.Errors[0].Code() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("a request with the store down: %+v", r.Errors)
	}
}

// No input is a wildcard or an SQL error: a NUL byte is refused (on SQLite it
// matched every customer), and text has length limits.
func TestStringInputLimits(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		s.CreateCustomer(t, partner, "Globex", false)
		search := `query($s: String) { customers(filter: {search: $s}) { totalCount } }`
		for _, bad := range []string{"\u0000", "acme\u0000", strings.Repeat("a", 100_000), strings.Repeat("b", 1001)} {
			r := s.Fails(t, "BAD_USER_INPUT", partner, search, map[string]any{"s": bad})
			if strings.Contains(r.Errors[0].Message, "SQL") {
				t.Fatalf("search %.20q: %s", bad, r.Errors[0].Message)
			}
		}
		var out struct{ Customers struct{ TotalCount int } }
		s.Must(t, partner, search, map[string]any{"s": "%"}, &out)
		if out.Customers.TotalCount != 0 {
			t.Fatalf("%% matched %d customers: it must match literally", out.Customers.TotalCount)
		}
		s.Fails(t, "BAD_USER_INPUT", partner, `mutation { createCustomer(input: {name: "a\u0000b"}) { id } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", billing, recordUsage, map[string]any{"in": map[string]any{"events": []any{event("e\x00", cust, "1")}}})
		s.Fails(t, "BAD_USER_INPUT", partner, setCreditWithKey, map[string]any{"in": map[string]any{"customerId": cust, "amount": "1", "idempotencyKey": strings.Repeat("k", 129)}})
	})
}
