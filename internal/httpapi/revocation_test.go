package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/testenv"
)

// keyID finds the id of the API key with the name.
func keyID(t *testing.T, s *testenv.Server, name string) string {
	t.Helper()
	var keys struct {
		APIKeys struct{ Nodes []struct{ ID, Name string } } `json:"apiKeys"`
	}
	s.Must(t, testenv.AdminToken, `{ apiKeys(first: 100) { nodes { id name } } }`, nil, &keys)
	for _, k := range keys.APIKeys.Nodes {
		if k.Name == name {
			return k.ID
		}
	}
	t.Fatalf("no key named %s", name)
	return ""
}

func revoke(t *testing.T, s *testenv.Server, id string) {
	t.Helper()
	s.Must(t, testenv.AdminToken, `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, map[string]any{"id": id}, nil)
}

// A revoked key stops working everywhere, also on what it already has open:
// before, queries and mutations over its open WebSocket kept succeeding (a
// setCredit was applied after revocation) and it could open a subscription
// with after: "0" and replay every alert. Now its sockets close with 4401 and
// its event streams end with UNAUTHENTICATED, at once on the process that
// revoked it and within 2 s on another.
func TestRevokedKeyStopsEverywhere(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		other := testenv.NewServer(t, db) // a second process on the same store
		id := keyID(t, s, "Reseller key")

		listener := listen(t, s, testenv.TransportWS, partner, nil)
		idle := s.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
		idle.Acked(t)
		remote := other.Dial(t, testenv.LegacyWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
		remote.Acked(t)
		stream := s.Stream(t, partner, `subscription { alerts { id threshold } }`)
		listening(t, s, 2)
		record(t, s, billing, event("before", cust, "80"))
		nextAlert(t, listener)

		revoked := time.Now()
		revoke(t, s, id)
		for name, c := range map[string]*testenv.WSClient{"listening socket": listener, "idle socket": idle} {
			if code := c.CloseCode(t, time.Second); code != 4401 {
				t.Fatalf("%s: close code %d, want 4401", name, code)
			}
		}
		ended := false
		for line := range stream {
			if strings.Contains(line, `"UNAUTHENTICATED"`) {
				ended = true
			}
		}
		if !ended {
			t.Fatal("the event stream ended without saying UNAUTHENTICATED")
		}
		if code := remote.CloseCode(t, 3*time.Second); code != 4401 {
			t.Fatalf("socket on the other process: close code %d, want 4401", code)
		}
		if d := time.Since(revoked); d > 2*time.Second+500*time.Millisecond {
			t.Fatalf("the other process took %v to close the socket", d)
		}
		// Nothing the key sends is served any more, on either process.
		for _, srv := range []*testenv.Server{s, other} {
			srv.Fails(t, "UNAUTHENTICATED", partner, setCreditWithKey, map[string]any{"in": map[string]any{"customerId": cust, "amount": "1"}})
			c := srv.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
			if code := c.CloseCode(t, 2*time.Second); code != 4401 {
				t.Fatalf("a new socket with the revoked key: close code %d", code)
			}
		}
		if c := s.Customer(t, testenv.AdminToken, cust); c.Credit != "100.00" {
			t.Fatalf("credit %s after revocation, want 100.00", c.Credit)
		}
	})
}

// Every operation on an open socket is authorised against the key as it is
// now, not as it was when the socket opened.
func TestSocketOperationsAreCheckedAgainstTheKeyNow(t *testing.T) {
	s, partner, _, cust := usageSetup(t, testenv.SQLite(t), "100", false)
	// A process that re-checks open sessions only every minute: what stops the
	// mutation is the check of each operation.
	other := testenv.NewServerWith(t, s.DB, httpapi.Services{}, testenv.Options{Keys: keys.Options{RecheckInterval: time.Minute}})
	c := other.Dial(t, testenv.TransportWS, map[string]any{"Authorization": "Bearer " + partner}, nil)
	c.Acked(t)
	revoke(t, s, keyID(t, s, "Reseller key"))
	time.Sleep(keys.DefaultCacheTTL + 100*time.Millisecond) // past the key look-up cache
	c.Subscribe(t, "m", `mutation { setCredit(input: {customerId: "`+cust+`", amount: "5"}) { customer { credit } } }`, nil)
	if m := c.Next(t, 3*time.Second); !strings.Contains(string(m.Payload), "UNAUTHENTICATED") {
		t.Fatalf("mutation over a revoked key's socket: %s %s", m.Type, m.Payload)
	}
	if got := s.Customer(t, testenv.AdminToken, cust); got.Credit != "100.00" {
		t.Fatalf("credit %s, want 100.00", got.Credit)
	}
}

// A BILLING key learns ids and the alert's own figures from recordUsage, not
// who the customer is: selecting more is FORBIDDEN, and refused before the
// usage is applied.
func TestBillingSeesNoCustomerDetails(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "100", false)
		for _, sel := range []string{"name", "email", "remark", "credit", "allocations { totalCount }", "... on Customer { name }"} {
			s.Fails(t, "FORBIDDEN", billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { alerts { customer { id `+sel+` } } } }`,
				map[string]any{"in": map[string]any{"events": []any{event("x-"+sel, cust, "80")}}})
		}
		s.Fails(t, "FORBIDDEN", billing, `fragment F on Customer { name } mutation($in: RecordUsageInput!) { recordUsage(input: $in) { alerts { customer { ...F } } } }`,
			map[string]any{"in": map[string]any{"events": []any{event("frag", cust, "80")}}})
		if c := s.Customer(t, partner, cust); c.Used != "0.00" {
			t.Fatalf("refused operations applied usage: used %s", c.Used)
		}
		got := record(t, s, billing, event("ok", cust, "80"))
		if len(got.Alerts) != 1 || got.Alerts[0].Customer.ID != cust || got.Alerts[0].Used != "80.00" {
			t.Fatalf("ids and figures: %+v", got)
		}
	})
}
