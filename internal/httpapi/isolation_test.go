package httpapi_test

import (
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

// Another partner's customer must look exactly like a missing one.
func TestPartnerIsolation(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		aID, a := s.CreatePartner(t, "Alpha", "1000")
		_, b := s.CreatePartner(t, "Beta", "1000")
		theirs := s.CreateCustomer(t, a, "Alpha's customer", false)
		s.SetCredit(t, a, theirs, "100")
		const missing = "999999"

		for _, id := range []string{theirs, missing} {
			var out struct{ Customer *struct{ ID string } }
			s.Must(t, b, `query($id: ID!) { customer(id: $id) { id } }`, map[string]any{"id": id}, &out)
			if out.Customer != nil {
				t.Fatalf("Beta sees customer %s", id)
			}
			in := map[string]any{"customerId": id, "amount": "1"}
			miss := s.Fails(t, "NOT_FOUND", b, setCredit, map[string]any{"in": in})
			s.Fails(t, "NOT_FOUND", b, withdrawCredit, map[string]any{"in": in})
			s.Fails(t, "NOT_FOUND", b, `query($c: ID!) { purchaseCheck(customerId: $c, amount: "1") { allowed } }`, map[string]any{"c": id})
			if id == theirs && miss.Errors[0].Message != "no customer with id "+theirs {
				t.Fatalf("message tells more than 'missing': %q", miss.Errors[0].Message)
			}
		}

		var lists struct {
			Customers         struct{ TotalCount int }
			CreditAllocations struct{ TotalCount int }
		}
		s.Must(t, b, `query($c: ID!) {
			customers(filter: {ids: [$c]}) { totalCount }
			creditAllocations(filter: {customerId: $c}) { totalCount } }`, map[string]any{"c": theirs}, &lists)
		if lists.Customers.TotalCount != 0 || lists.CreditAllocations.TotalCount != 0 {
			t.Fatalf("Beta lists Alpha's data: %+v", lists)
		}
		s.Must(t, b, `query($s: String) { customers(filter: {search: $s}) { totalCount } creditAllocations { totalCount } }`,
			map[string]any{"s": theirs}, &lists)
		if lists.Customers.TotalCount != 0 || lists.CreditAllocations.TotalCount != 0 {
			t.Fatalf("Beta finds Alpha's data: %+v", lists)
		}

		// Naming another partner is the same as naming none that exists.
		var p struct{ Partner *struct{ Name string } }
		s.Must(t, b, `query($p: ID) { partner(id: $p) { name } }`, map[string]any{"p": aID}, &p)
		if p.Partner != nil {
			t.Fatal("Beta reads Alpha's partner")
		}
		s.Fails(t, "NOT_FOUND", b, `query($p: ID) { customers(partnerId: $p) { totalCount } }`, map[string]any{"p": aID})
		s.Fails(t, "NOT_FOUND", b, `mutation($p: ID) { createCustomer(input: {name: "x", partnerId: $p}) { id } }`, map[string]any{"p": aID})

		// Alpha still has everything, untouched.
		if c := s.Customer(t, a, theirs); c.Credit != "100.00" {
			t.Fatalf("Alpha's customer = %+v", c)
		}
		if n := countAllocations(t, s, a); n != 1 {
			t.Fatalf("Alpha has %d records", n)
		}
	})
}
