package httpapi_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

const setCreditWithKey = `mutation($in: SetCreditInput!) { setCredit(input: $in) { allocation { id amount } customer { credit } } }`

// Idempotency keys and event ids compare byte for byte on both stores: on
// MySQL's default collation "aZ3" matched "Az3" (the second change was
// answered with the first's record and never applied) and "x-1 " matched
// "x-1" (the usage batch failed with INTERNAL_SERVER_ERROR on every retry).
func TestIdentifiersCompareExactly(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)

		for _, key := range []string{"Az3", "aZ3", "Az3 ", " Az3"} {
			var out struct {
				SetCredit struct{ Customer struct{ Credit string } }
			}
			s.Must(t, partner, setCreditWithKey, map[string]any{"in": map[string]any{
				"customerId": cust, "amount": "10", "idempotencyKey": key}}, &out)
		}
		if c := s.Customer(t, partner, cust); c.Credit != "1040.00" {
			t.Fatalf("four distinct keys applied to credit %s, want 1040.00", c.Credit)
		}

		for _, id := range []string{"INV-1", "inv-1", "x-1", "x-1 ", "Straße", "STRASSE"} {
			if got := record(t, s, billing, event(id, cust, "1")); got.Accepted != 1 || got.Duplicates != 0 {
				t.Fatalf("event %q: %+v, want accepted", id, got)
			}
		}
		if c := s.Customer(t, partner, cust); c.Used != "6.00" {
			t.Fatalf("used %s after six distinct events, want 6.00", c.Used)
		}
	})
}

// An eventId sent again with other content is a conflict, never a duplicate:
// the second event's usage would otherwise never be counted.
func TestReusedEventIDWithOtherContentConflicts(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)
		other := s.CreateCustomer(t, partner, "Other", false)
		first := map[string]any{"eventId": "e1", "customerId": cust, "amount": "5.00",
			"occurredAt": "2026-11-01T10:00:00Z", "description": "compute"}
		record(t, s, billing, first)

		with := func(k string, v any) map[string]any {
			e := map[string]any{}
			for key, val := range first {
				e[key] = val
			}
			e[k] = v
			return e
		}
		for name, e := range map[string]map[string]any{
			"customer":    with("customerId", other),
			"amount":      with("amount", "5.01"),
			"occurredAt":  with("occurredAt", "2026-11-01T10:00:01Z"),
			"description": with("description", "storage"),
		} {
			r := s.Fails(t, "IDEMPOTENCY_CONFLICT", billing, recordUsage, map[string]any{"in": map[string]any{
				"events": []any{event("fresh-"+name, cust, "1"), e}}})
			if msg := r.Errors[0].Message; !strings.Contains(msg, "events[1]") {
				t.Fatalf("%s: message %q does not name events[1]", name, msg)
			}
		}
		// The same content again, or with the optional fields left out, is a duplicate.
		for _, e := range []map[string]any{first, event("e1", cust, "5")} {
			if got := record(t, s, billing, e); got.Accepted != 0 || got.Duplicates != 1 {
				t.Fatalf("repeat %v: %+v, want one duplicate", e, got)
			}
		}
		// Inside one batch too.
		s.Fails(t, "IDEMPOTENCY_CONFLICT", billing, recordUsage, map[string]any{"in": map[string]any{
			"events": []any{event("b1", cust, "1"), event("b1", cust, "2")}}})
		if got := record(t, s, billing, event("b2", cust, "1"), event("b2", cust, "1")); got.Accepted != 1 || got.Duplicates != 1 {
			t.Fatalf("identical repeat inside a batch: %+v", got)
		}
		// Refused batches applied nothing.
		if c := s.Customer(t, partner, cust); c.Used != "6.00" {
			t.Fatalf("used %s, want 6.00", c.Used)
		}
		if c := s.Customer(t, partner, other); c.Used != "0.00" {
			t.Fatalf("other customer used %s, want 0.00", c.Used)
		}
	})
}

// Times outside 1970..9999 are refused as input, not failed on by the store.
func TestTimeInputIsBounded(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, partner, billing, cust := usageSetup(t, db, "1000", false)
		for _, ts := range []string{"0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"} {
			s.Fails(t, "BAD_USER_INPUT", billing, recordUsage, map[string]any{"in": map[string]any{"events": []any{
				event("ok-"+ts, cust, "1"),
				map[string]any{"eventId": "t-" + ts, "customerId": cust, "amount": "1", "occurredAt": ts}}}})
			s.Fails(t, "BAD_USER_INPUT", partner, `query($f: Time) { creditAllocations(filter: {from: $f}) { totalCount } }`, map[string]any{"f": ts})
			s.Fails(t, "BAD_USER_INPUT", partner, `query($f: Time) { alerts(filter: {to: $f}) { totalCount } }`, map[string]any{"f": ts})
		}
		if got := record(t, s, billing, map[string]any{"eventId": "edge", "customerId": cust, "amount": "1", "occurredAt": "1970-01-01T00:00:00Z"}); got.Accepted != 1 {
			t.Fatalf("1970-01-01 refused: %+v", got)
		}
		s.Must(t, partner, `{ creditAllocations(filter: {to: "9999-12-31T23:59:59Z"}) { totalCount } }`, nil, nil)
	})
}
