package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/testenv"
)

// send posts a raw body to /graphql with the headers and returns the status,
// the response headers and the raw body.
func send(t *testing.T, s *testenv.Server, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, raw
}

// Request errors answer as GraphQL over HTTP asks of each media type: 200
// with the errors for application/json (Apollo Client 3 sends */* and reads
// errors only from a 2xx), 400 without a data entry for
// application/graphql-response+json. A body that is not a GraphQL request in
// JSON is not a well-formed request at all: 400 without data for both, as
// graphql-http's audit asks (it warned while this was a 200).
func TestRequestErrorStatusByMediaType(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	bodies := map[string]string{
		"JSON parse failure":    `{"query": "{ viewer { role } }"`,
		"document parse error":  `{"query": "{ viewer { role } "}`,
		"validation failure":    `{"query": "{ viewer { nope } }"}`,
		"unknown operation":     `{"query": "query A { viewer { role } }", "operationName": "B"}`,
		"invalid variables":     `{"query": "query($n: Int) { customers(first: $n) { totalCount } }", "variables": {"n": "ten"}}`,
		"parameters wrong type": `{"query": 1}`,
	}
	for name, body := range bodies {
		for _, accept := range []string{"", "*/*", "application/json", "application/graphql-response+json", "application/graphql-response+json, application/json;q=0.9"} {
			status, header, raw := send(t, s, body, map[string]string{"Accept": accept, "Authorization": "Bearer " + partner})
			var answer map[string]json.RawMessage
			if err := json.Unmarshal(raw, &answer); err != nil {
				t.Fatalf("%s, Accept %q: not JSON (%d): %s", name, accept, status, raw)
			}
			var errors []testenv.Error
			json.Unmarshal(answer["errors"], &errors)
			if len(errors) == 0 || errors[0].Code() == "" {
				t.Errorf("%s, Accept %q: no coded error: %s", name, accept, raw)
			}
			_, hasData := answer["data"]
			if name == "JSON parse failure" || name == "parameters wrong type" {
				if status != http.StatusBadRequest || hasData {
					t.Errorf("%s, Accept %q: answered %d (data present: %v), want 400 without data: %s", name, accept, status, hasData, raw)
				}
				continue
			}
			if strings.HasPrefix(header.Get("Content-Type"), "application/graphql-response+json") {
				if status != http.StatusBadRequest || hasData {
					t.Errorf("%s, Accept %q: graphql-response+json answered %d (data present: %v), want 400 without data: %s", name, accept, status, hasData, raw)
				}
				continue
			}
			if status != http.StatusOK {
				t.Errorf("%s, Accept %q (%s): HTTP %d, want 200: %s", name, accept, header.Get("Content-Type"), status, raw)
			}
		}
	}
}

// requestLines returns the JSON log lines whose msg is "request".
func requestLines(t *testing.T, log *testenv.Output) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["msg"] == "request" {
			out = append(out, line)
		}
	}
	return out
}

// Every request gets an id (the client's, when usable), returned in
// X-Request-Id and in every error, and logged once with its operation, role,
// partner, outcome and duration, never with its key or variables.
func TestRequestIDsAndLogLines(t *testing.T) {
	logs := &testenv.Output{}
	s := testenv.NewServerWith(t, testenv.SQLite(t), httpapi.Services{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	partnerID, partner := s.CreatePartner(t, "Reseller", "1000")
	cust := s.CreateCustomer(t, partner, "Acme", false)

	const secretRemark = "remark-that-must-not-be-logged"
	body, _ := json.Marshal(map[string]any{
		"query":         `mutation Grant($c: ID!, $r: String) { setCredit(input: {customerId: $c, amount: "5", remark: $r}) { customer { id } } }`,
		"operationName": "Grant",
		"variables":     map[string]any{"c": cust, "r": secretRemark},
	})
	status, header, raw := send(t, s, string(body), map[string]string{"Authorization": "Bearer " + partner, "X-Request-Id": "client-id-42"})
	if status != 200 || header.Get("X-Request-Id") != "client-id-42" || strings.Contains(string(raw), "errors") {
		t.Fatalf("setCredit: %d %v %s", status, header, raw)
	}

	// An error carries the id, which the client did not send: one is made.
	_, header, raw = send(t, s, `{"query": "query Broken { customers(first: -1) { totalCount } }"}`, map[string]string{"Authorization": "Bearer " + partner})
	made := header.Get("X-Request-Id")
	var answer testenv.Response
	json.Unmarshal(raw, &answer)
	if made == "" || len(answer.Errors) != 1 || answer.Errors[0].Extensions["requestId"] != made {
		t.Fatalf("error without the request id %q: %s", made, raw)
	}
	// An unusable id (a log injection) is replaced.
	_, header, _ = send(t, s, `{"query": "{ viewer { role } }"}`, map[string]string{"X-Request-Id": "a\tb c"})
	if got := header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, "\t ") {
		t.Fatalf("unusable request id kept: %q", got)
	}
	// Errors that never reach GraphQL execution carry it too.
	_, header, raw = send(t, s, `{"query": "{ viewer { role } "}`, map[string]string{"X-Request-Id": "parse-1"})
	if !strings.Contains(string(raw), `"requestId":"parse-1"`) {
		t.Fatalf("parse error without the request id: %s", raw)
	}

	// So do refusals of the transport.
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/graphql", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "put-1")
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 405 || !strings.Contains(string(raw), `"requestId":"put-1"`) {
		t.Fatalf("PUT: %d %s", res.StatusCode, raw)
	}

	lines := requestLines(t, logs)
	find := func(id string) map[string]any {
		for _, l := range lines {
			if l["request_id"] == id {
				return l
			}
		}
		t.Fatalf("no request line for %s in:\n%s", id, logs.String())
		return nil
	}
	grant := find("client-id-42")
	if grant["operation"] != "Grant" || grant["type"] != "mutation" || grant["role"] != "PARTNER" ||
		fmt.Sprint(grant["partner_id"]) != partnerID || grant["code"] != "OK" || grant["duration"] == nil {
		t.Fatalf("setCredit line: %v", grant)
	}
	if broken := find(made); broken["code"] != "BAD_USER_INPUT" || broken["operation"] != "Broken" {
		t.Fatalf("failed query line: %v", broken)
	}
	if parse := find("parse-1"); parse["code"] != "GRAPHQL_PARSE_FAILED" || parse["type"] != "none" {
		t.Fatalf("parse failure line: %v", parse)
	}
	if put := find("put-1"); put["code"] != "BAD_REQUEST" || put["status"] != float64(405) {
		t.Fatalf("refused transport line: %v", put)
	}
	for _, leak := range []string{partner, secretRemark} {
		if strings.Contains(logs.String(), leak) {
			t.Fatalf("the log holds %q:\n%s", leak, logs.String())
		}
	}
}

// scrape reads /metrics and returns its families by name.
func scrape(t *testing.T, s *testenv.Server) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := s.Client().Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return families
}

// value is the value of the family's series whose labels include want.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := families[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
series:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue()
		}
	}
	t.Fatalf("no series of %s with %v", name, want)
	return 0
}

// /metrics counts what operators alert on, as clients cause it.
func TestMetrics(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		c := listen(t, s, testenv.TransportWS, partner, map[string]any{"c": cust})
		listening(t, s, 1)

		before := scrape(t, s)
		if v := value(t, before, "credit_open_connections", map[string]string{"transport": "websocket"}); v != 1 {
			t.Fatalf("open WebSocket connections: %v", v)
		}
		if v := value(t, before, "credit_active_subscriptions", map[string]string{"transport": "websocket"}); v != 1 {
			t.Fatalf("active subscriptions: %v", v)
		}
		value(t, before, "go_sql_open_connections", map[string]string{"db_name": "credit"})
		value(t, before, "credit_db_transactions_retried_total", nil)

		// 80 % used: one alert (75), delivered to the listener.
		got := record(t, s, billing, event("m1", cust, "80"), event("m2", cust, "1"))
		record(t, s, billing, event("m1", cust, "80"))
		conflict := s.Post(t, billing, recordUsage, map[string]any{"in": map[string]any{"events": []map[string]any{event("m1", cust, "7")}}})
		if len(got.Alerts) != 1 || len(conflict.Errors) == 0 {
			t.Fatalf("usage: %+v, conflict %+v", got, conflict)
		}
		nextAlert(t, c)
		var dash struct{ Customers struct{ TotalCount int } }
		s.Must(t, partner, `query Dashboard { customers { totalCount } }`, nil, &dash)
		s.Fails(t, "UNAUTHENTICATED", "", `query Dashboard { customers { totalCount } }`, nil)

		after := scrape(t, s)
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"credit_usage_events_total", map[string]string{"outcome": "accepted"}, 2},
			{"credit_usage_events_total", map[string]string{"outcome": "duplicate"}, 1},
			{"credit_usage_events_total", map[string]string{"outcome": "conflicting"}, 1},
			{"credit_graphql_operations_total", map[string]string{"operation": "Dashboard", "type": "query", "code": "OK"}, 1},
			{"credit_graphql_operations_total", map[string]string{"operation": "Dashboard", "type": "query", "code": "UNAUTHENTICATED"}, 1},
			{"credit_graphql_operation_duration_seconds", map[string]string{"operation": "Dashboard", "type": "query"}, 2},
		} {
			if v := value(t, after, c.name, c.labels); v != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
			}
		}
		for _, name := range []string{"credit_alerts_raised_total", "credit_alerts_delivered_total"} {
			if d := value(t, after, name, nil) - value(t, before, name, nil); d != 1 {
				t.Errorf("%s grew by %v, want 1", name, d)
			}
		}
		if lag := value(t, after, "credit_alert_tail_lag", nil); lag != 0 {
			t.Errorf("tail lag %v after the alert was delivered", lag)
		}
		if polled := value(t, after, "credit_alert_tail_last_poll_timestamp_seconds", nil); time.Since(time.Unix(int64(polled), 0)) > 10*time.Second {
			t.Errorf("last poll %v", polled)
		}
		if v := value(t, after, "credit_store_up", nil); v != 1 {
			t.Errorf("credit_store_up %v", v)
		}

		// Closing the socket ends its subscription and connection.
		c.Close()
		listening(t, s, 0)
		waitFor(t, func() bool {
			m := scrape(t, s)
			return value(t, m, "credit_open_connections", map[string]string{"transport": "websocket"}) == 0 &&
				value(t, m, "credit_active_subscriptions", map[string]string{"transport": "websocket"}) == 0
		})
	})
}

// With METRICS_TOKEN set, /metrics asks for it.
func TestMetricsToken(t *testing.T) {
	s := testenv.NewServerWith(t, testenv.SQLite(t), httpapi.Services{MetricsToken: "scrape-secret"})
	get := func(auth string) int {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if get("") != 401 || get("Bearer wrong") != 401 || get("Bearer scrape-secret") != 200 {
		t.Fatal("the metrics token is not enforced")
	}
}
