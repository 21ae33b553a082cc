package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/testenv"
)

func TestDecimalInput(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000000000000")
		cust := s.CreateCustomer(t, key, "Acme", false)

		accepted := []struct {
			in   any
			want string
		}{
			{"999999999999.99", "999999999999.99"}, {"-999999999999.99", "-999999999999.99"},
			{"12", "12.00"}, {12, "12.00"}, {"0.5", "0.50"}, {"0.05", "0.05"}, {"-1.25", "-1.25"},
			{"007.10", "7.10"},
		}
		credit := int64(0)
		for _, c := range accepted {
			var out struct{ SetCredit changePayload }
			s.Must(t, key, setCredit, map[string]any{"in": map[string]any{"customerId": cust, "amount": c.in}}, &out)
			if out.SetCredit.Allocation.Amount != c.want {
				t.Errorf("amount %#v read as %s, want %s", c.in, out.SetCredit.Allocation.Amount, c.want)
			}
			credit += cents(t, c.want)
		}
		// Raw JSON, so that floats reach the server as written.
		rejected := []string{
			`"12.345"`, `"1e3"`, `"NaN"`, `"Infinity"`, `""`, `" 12"`, `"12 "`, `"+12"`, `"12."`, `".5"`, `"1,000"`,
			`"0x10"`, `"abc"`, `"1000000000000.01"`, `"-1000000000000.01"`, `12.5`, `12.0`, `1e3`, `1000000000001`,
			`true`, `["1"]`, `null`,
		}
		for _, in := range rejected {
			body := `{"query": ` + strconvQuote(setCredit) + `, "variables": {"in": {"customerId": "` + cust + `", "amount": ` + in + `}}}`
			r := s.PostRaw(t, key, []byte(body))
			want := "BAD_USER_INPUT"
			if in == `null` {
				want = "GRAPHQL_VALIDATION_FAILED" // a non-null argument
			}
			if fmt.Sprint(r.Codes()) != "["+want+"]" {
				t.Errorf("amount %s: got %s %+v, want %s", in, r.Data, r.Errors, want)
			}
		}
		// Literals in the query text go through the same rules.
		for lit, code := range map[string]string{`"1.001"`: "BAD_USER_INPUT", `1.5`: "BAD_USER_INPUT", `"1e2"`: "BAD_USER_INPUT"} {
			op := `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: ` + lit + `}) { customer { credit } } }`
			s.Fails(t, code, key, op, map[string]any{"c": cust})
		}
		var ok struct {
			SetCredit struct{ Customer struct{ Credit string } }
		}
		s.Must(t, key, `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "0.01"}) { customer { credit } } }`, map[string]any{"c": cust}, &ok)
		s.Must(t, key, `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: 2}) { customer { credit } } }`, map[string]any{"c": cust}, &ok)
		credit += 201
		if got := cents(t, ok.SetCredit.Customer.Credit); got != credit {
			t.Fatalf("credit %d cents, want %d: a rejected amount was applied", got, credit)
		}
		// Money never becomes a JSON number on output.
		r := s.Post(t, key, `query($c: ID!) { customer(id: $c) { credit used available } }`, map[string]any{"c": cust})
		if !strings.Contains(string(r.Data), `"credit":"`) || !strings.Contains(string(r.Data), `"used":"0.00"`) {
			t.Fatalf("Decimal output: %s", r.Data)
		}
	})
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestErrorsCarryCodesAndNoInternals(t *testing.T) {
	s := testenv.NewServer(t, testenv.SQLite(t))
	_, key := s.CreatePartner(t, "Reseller", "100")
	s.CreateCustomer(t, key, "Acme", false)

	s.Fails(t, "GRAPHQL_PARSE_FAILED", key, `{ customers { `, nil)
	s.Fails(t, "GRAPHQL_VALIDATION_FAILED", key, `{ customers { nope } }`, nil)
	s.Fails(t, "BAD_USER_INPUT", key, `{ customer(id: "abc") { id } }`, nil)
	// A document of several operations needs operationName, and one that
	// names none of them says so (gqlgen's own text read "operation  not found").
	for body, want := range map[string]string{
		`{"query": "query A { viewer { role } } query B { viewer { role } }"}`:                       "the document holds several operations (or none): name the one to run in operationName",
		`{"query": "query A { viewer { role } } query B { viewer { role } }", "operationName": "C"}`: `the document holds no operation named "C"`,
	} {
		r := s.PostRaw(t, key, []byte(body))
		if len(r.Errors) != 1 || r.Errors[0].Code() != "GRAPHQL_VALIDATION_FAILED" || r.Errors[0].Message != want {
			t.Errorf("%s: %+v, want %q", body, r.Errors, want)
		}
	}
	r := s.PostRaw(t, key, []byte(`{"query": "{ viewer { role } }", "variables": {"a": SELECT * FROM api_keys`))
	if len(r.Errors) != 1 || r.Errors[0].Code() != "GRAPHQL_PARSE_FAILED" || strings.Contains(r.Errors[0].Message, "api_keys") {
		t.Fatalf("bad JSON body: %+v", r.Errors)
	}

	// An oversized body is refused, not read whole.
	huge := []byte(`{"query": "{ viewer { role } }", "pad": "` + strings.Repeat("x", 5<<20) + `"}`)
	if r := s.PostRaw(t, key, huge); r.Status != http.StatusRequestEntityTooLarge || len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_USER_INPUT" ||
		!strings.Contains(r.Errors[0].Message, "larger than 4 MiB") {
		t.Fatalf("oversized body: %+v", r.Errors)
	}

	// A store failure is an internal error that says nothing about the store.
	if err := s.DB.Exec("DROP TABLE customers").Error; err != nil {
		t.Fatal(err)
	}
	r = s.Post(t, key, `{ customers { totalCount } }`, nil)
	if len(r.Errors) != 1 || r.Errors[0].Code() != "INTERNAL_SERVER_ERROR" || r.Errors[0].Message != "internal server error" {
		t.Fatalf("store failure: %+v", r.Errors)
	}
	raw, _ := json.Marshal([]any{r.Errors[0].Message, r.Errors[0].Extensions})
	for _, leak := range []string{"customers", "SQL", "sqlite", "table", ".go", "goroutine"} {
		if strings.Contains(string(raw), leak) {
			t.Fatalf("error leaks %q: %s", leak, raw)
		}
	}
}

func TestHTTPEndpoints(t *testing.T) {
	db := testenv.SQLite(t)
	s := testenv.NewServer(t, db)
	_, key := s.CreatePartner(t, "Reseller", "100")

	get := func(path string, header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/", nil); code != 200 || !strings.Contains(strings.ToLower(body), "graphiql") {
		t.Fatalf("playground: %d %.200s", code, body)
	}
	if code, body := get("/graphql?query="+url.QueryEscape("{ viewer { role } }"), map[string]string{"Authorization": "Bearer " + key}); code != 200 || !strings.Contains(body, `"PARTNER"`) {
		t.Fatalf("GET /graphql: %d %s", code, body)
	}
	if code, _ := get("/healthz", nil); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	// Browser frontends on other origins may call the API.
	req, _ := http.NewRequest(http.MethodOptions, s.URL+"/graphql", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	// Apollo Client adds its client name and version, tracing adds traceparent.
	asked := []string{"authorization", "content-type", "apollographql-client-name", "apollographql-client-version", "traceparent", "x-request-id"}
	req.Header.Set("Access-Control-Request-Headers", strings.Join(asked, ","))
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	allowed := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range asked {
		if !strings.Contains(allowed, h) {
			t.Fatalf("preflight does not allow %s: %v", h, res.Header)
		}
	}
	if !strings.EqualFold(res.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("the request id is not exposed to browsers: %v", res.Header)
	}

	if code, body := get("/readyz", nil); code != 200 || body != "ready\n" {
		t.Fatalf("readyz: %d %s", code, body)
	}
	// With the store gone the process is alive but not ready.
	database.Close(db)
	if code, _ := get("/healthz", nil); code != 200 {
		t.Fatalf("healthz with the store closed: %d", code)
	}
	if code, body := get("/readyz", nil); code != http.StatusServiceUnavailable || !strings.Contains(body, "database") {
		t.Fatalf("readyz with the store closed: %d %s", code, body)
	}
}
