package httpapi_test

import (
	"strings"
	"testing"

	"github.com/cloudreseller/credit/internal/testenv"
)

// requestCodes are the codes a listing may answer bad input with.
var requestCodes = map[string]bool{"BAD_USER_INPUT": true, "GRAPHQL_VALIDATION_FAILED": true, "GRAPHQL_PARSE_FAILED": true}

// Listing filters, paging and cursors, whatever a client sends, answer with
// data or a request error: never a 5xx, an internal error, a panic or store
// text. (Run longer with: go test -run '^$' -fuzz FuzzListingInput ./internal/httpapi)
func FuzzListingInput(f *testing.F) {
	f.Add("acme", "ACTIVE", "WITHDRAW", "2026-01-01T00:00:00Z", "", 20, "1")
	f.Add("\x00", "SUSPENDED", "ALLOCATE", "0000-01-01T00:00:00Z", "eyJ2IjoiIiwiaSI6MX0", 0, "-1")
	f.Add("%_!", "nope", "", "yesterday", "%%%", 101, "18446744073709551616")
	f.Add(strings.Repeat("é", 1001), "", "", "", "eyJ2IjoieCIsImkiOjF9", -1, "abc")
	s := testenv.NewServer(f, testenv.SQLite(f))
	_, partner := s.CreatePartner(f, "Reseller", "1000")
	cust := s.CreateCustomer(f, partner, "Acme", false)
	s.SetCredit(f, partner, cust, "10")

	const query = `query($search: String, $status: CustomerStatus, $kind: AllocationKind, $from: Time, $after: String, $first: Int, $id: ID!, $ids: [ID!]) {
		customers(filter: {search: $search, status: $status, ids: $ids}, first: $first, after: $after) { totalCount nodes { id } }
		byName: customers(orderBy: {field: NAME, direction: DESC}, first: $first, after: $after) { nodes { id } }
		creditAllocations(filter: {kind: $kind, from: $from, to: $from, customerId: $id}, first: $first, after: $after) { totalCount nodes { id } }
		alerts(filter: {from: $from, customerId: $id}, first: $first, after: $after) { nodes { id } }
		customer(id: $id) { allocations(first: $first, after: $after) { nodes { id } } }
	}`
	f.Fuzz(func(t *testing.T, search, status, kind, from, after string, first int, id string) {
		vars := map[string]any{"search": search, "status": status, "kind": kind, "from": from, "after": after, "first": first, "id": id, "ids": []string{id, cust}}
		for _, empty := range []string{"status", "kind", "from", "after"} {
			if vars[empty] == "" {
				delete(vars, empty)
			}
		}
		r := s.Post(t, partner, query, vars)
		if r.Status >= 500 {
			t.Fatalf("HTTP %d for %v", r.Status, vars)
		}
		for _, e := range r.Errors {
			if !requestCodes[e.Code()] {
				t.Fatalf("%v: error %s %q", vars, e.Code(), e.Message)
			}
			for _, leak := range []string{"SQL", "sql:", "sqlite", ".go:", "goroutine"} {
				if strings.Contains(e.Message, leak) {
					t.Fatalf("%v: error leaks %q: %s", vars, leak, e.Message)
				}
			}
		}
	})
}
