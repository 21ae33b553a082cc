package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/testenv"
)

// The cost of a query counts what it fetches: connections multiply their
// items by first. Before, this query scored 12 and, with 100 customers of 100
// records, ran about two million SQL statements.
func TestQueryCostLimits(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	r := s.Fails(t, "COMPLEXITY_LIMIT_EXCEEDED", partner, `{ customers(first: 100) { nodes { allocations(first: 100) {
		nodes { customer { allocations(first: 100) { nodes { id } } } } } } } }`, nil)
	if msg := r.Errors[0].Message; !regexp.MustCompile(`complexity \d{7}.* limit of ` + fmt.Sprint(httpapi.ComplexityLimit)).MatchString(msg) {
		t.Fatalf("the refusal does not say the cost and the limit: %s", msg)
	}
	// first defaults to 20 when left out.
	s.Fails(t, "COMPLEXITY_LIMIT_EXCEEDED", partner, `{ customers { nodes { allocations { nodes { customer { allocations { nodes { id amount } } } } } } } }`, nil)

	deep := `{ customers(first: 1) { nodes { alerts(first: 1) { nodes { customer { alerts(first: 1) { nodes { customer { alerts(first: 1) { nodes { customer { id } } } } } } } } } } } }`
	r = s.Fails(t, "DEPTH_LIMIT_EXCEEDED", partner, deep, nil)
	if !strings.Contains(r.Errors[0].Message, fmt.Sprint(httpapi.MaxDepth)) {
		t.Fatalf("depth refusal: %s", r.Errors[0].Message)
	}
	var aliases strings.Builder
	aliases.WriteString("{")
	for i := range httpapi.MaxAliases + 1 {
		fmt.Fprintf(&aliases, " a%d: viewer { role }", i)
	}
	aliases.WriteString(" }")
	s.Fails(t, "ALIAS_LIMIT_EXCEEDED", partner, aliases.String(), nil)

	// What the README shows, and GraphiQL's schema query, stay within the limits.
	for _, q := range []string{
		`{ customers(first: 100, orderBy: {field: AVAILABLE, direction: ASC}) { totalCount nodes { id name email remark credit used available usagePercent status createdAt } pageInfo { hasNextPage endCursor } } }`,
		`{ creditAllocations(first: 100) { totalCount edges { cursor node { createdAt customer { name } amount creditBefore creditAfter operator remark } } } }`,
		`{ customers(first: 50) { nodes { id allocations(first: 5) { totalCount nodes { id amount } } alerts(first: 5) { nodes { id threshold } } } } }`,
		introspectionQuery,
	} {
		s.Must(t, partner, q, nil, nil)
	}
}

// A page of customers each listing its own records costs a few statements,
// not a few per customer, and each customer's nested page is the one it gets
// on its own.
func TestNestedConnectionsAreBatched(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		// Count the statements run for requests (not the alert tail's or the
		// key watcher's, which run outside any request), registered before the
		// server starts: GORM's callbacks may not change while it runs.
		var statements atomic.Int64
		count := func(d *gorm.DB) {
			if _, err := auth.FromContext(d.Statement.Context); err == nil && !d.DryRun { // sub-queries are built dry, not run
				statements.Add(1)
			}
		}
		db.Callback().Query().After("gorm:query").Register("test:count", count)
		db.Callback().Row().After("gorm:row").Register("test:count", count)
		s, partner, billing, _ := usageSetup(t, db, "100", false)
		var ids []string
		for i := range 30 {
			id := s.CreateCustomer(t, partner, fmt.Sprint("C", i), false)
			ids = append(ids, id)
			for range i % 4 {
				s.SetCredit(t, partner, id, "10")
			}
			if i%3 == 0 {
				record(t, s, billing, event("u"+id, id, "10"))
			}
		}
		type nested struct {
			TotalCount int
			Nodes      []struct{ ID string }
			PageInfo   struct {
				HasNextPage bool
				EndCursor   *string
			}
		}
		var out struct {
			Customers struct {
				Nodes []struct {
					ID          string
					Allocations nested
					Alerts      nested
				}
			}
		}
		const fields = `totalCount nodes { id } pageInfo { hasNextPage endCursor }`
		statements.Store(0)
		s.Must(t, partner, `{ customers(first: 100) { nodes { id allocations(first: 2) { `+fields+` } alerts(first: 1) { `+fields+` } } } }`, nil, &out)
		// Two nested connections of 31 customers, loaded one by one, cost 124
		// statements; batched, 2 each (and 1 more for alerts: the look for
		// alerts still in the outbox) plus the page's 2 (a slow machine may
		// split a batch in a few, as the loaders wait 1 ms for more keys).
		if n := statements.Load(); n > 24 {
			t.Fatalf("a page of 31 customers with two nested connections ran %d statements", n)
		}
		// Every customer's alert rules in force: one read of rules for the page.
		statements.Store(0)
		s.Must(t, partner, `{ customers(first: 100) { nodes { id alertRules { percentThresholds percentThresholdsSource } } } }`, nil, nil)
		if n := statements.Load(); n > 3 {
			t.Fatalf("a page of 31 customers with their alert rules ran %d statements", n)
		}
		// A page without totalCount does not count.
		statements.Store(0)
		s.Must(t, partner, `{ customers(first: 50) { nodes { id } pageInfo { hasNextPage } } }`, nil, nil)
		if n := statements.Load(); n != 1 {
			t.Fatalf("a page without totalCount ran %d statements, want 1", n)
		}
		if len(out.Customers.Nodes) != 31 {
			t.Fatalf("%d customers", len(out.Customers.Nodes))
		}
		for _, c := range out.Customers.Nodes {
			var alone struct {
				Customer struct{ Allocations, Alerts nested }
			}
			s.Must(t, partner, `query($id: ID!) { customer(id: $id) { allocations(first: 2) { `+fields+` } alerts(first: 1) { `+fields+` } } }`, map[string]any{"id": c.ID}, &alone)
			got, _ := json.Marshal([]nested{c.Allocations, c.Alerts})
			want, _ := json.Marshal([]nested{alone.Customer.Allocations, alone.Customer.Alerts})
			if string(got) != string(want) {
				t.Fatalf("customer %s nested in a list: %s; on its own: %s", c.ID, got, want)
			}
		}
	})
}

const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`

// A request whose body does not arrive within the body timeout is answered
// 408 and its connection closed; a slow body that arrives in time is served,
// and an event stream, a POST that stays open, is not cut by the timeout.
func TestBodyTimeout(t *testing.T) {
	// Generous enough that the slow body below (two pauses of a fifth of it)
	// arrives in time on a loaded machine.
	const timeout = time.Second
	s := testenv.NewServerWith(t, testenv.SQLite(t), httpapi.Services{BodyTimeout: timeout, PingInterval: time.Hour})
	_, partner := s.CreatePartner(t, "Reseller", "1000")
	billing := s.CreateKey(t, "feed", "BILLING", "")
	cust := s.CreateCustomer(t, partner, "Acme", false)
	s.SetCredit(t, partner, cust, "100")

	send := func(parts ...string) (*bufio.Reader, net.Conn) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		body := `{"query": "{ viewer { role } }"}`
		fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", partner, len(body))
		rest := body
		for _, p := range parts {
			conn.Write([]byte(p))
			rest = strings.TrimPrefix(rest, p)
			time.Sleep(timeout / 5)
		}
		if len(parts) > 0 {
			conn.Write([]byte(rest))
		}
		conn.SetReadDeadline(time.Now().Add(10 * timeout))
		return bufio.NewReader(conn), conn
	}

	// Headers, and no body.
	r, _ := send()
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to a body that never came: %v", err)
	}
	answer, _ := io.ReadAll(res.Body)
	var out testenv.Response
	if res.StatusCode != http.StatusRequestTimeout || json.Unmarshal(answer, &out) != nil || len(out.Errors) != 1 ||
		out.Errors[0].Code() != "BAD_REQUEST" || !strings.Contains(out.Errors[0].Message, "did not arrive within") {
		t.Fatalf("a body that never came: %d %s", res.StatusCode, answer)
	}
	if !res.Close {
		t.Error("the connection of a body that never came stays open")
	}

	// A body in three parts, each within the timeout, all of it within it.
	r, _ = send(`{"query": `, `"{ viewer`)
	if res, err = http.ReadResponse(r, nil); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("a slow body in time: %v %v", res, err)
	}

	// An event stream outlives the timeout.
	lines := s.Stream(t, partner, `subscription { alerts { id threshold } }`)
	listening(t, s, 1)
	time.Sleep(2 * timeout)
	record(t, s, billing, event("late", cust, "80"))
	for deadline := time.After(5 * time.Second); ; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the event stream ended")
			}
			if strings.Contains(l, `"threshold":75`) {
				return
			}
		case <-deadline:
			t.Fatal("no alert on an event stream older than the body timeout")
		}
	}
}
