package httpapi_test

import (
	"fmt"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

// parallel runs fn(i) for i in [0, n) at the same time and returns the error
// codes of the responses ("" for success).
func parallel(n int, fn func(i int) testenv.Response) []string {
	codes := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := fn(i)
			if len(r.Errors) > 0 {
				codes[i] = r.Errors[0].Code()
			}
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

func count(codes []string, code string) int {
	n := 0
	for _, c := range codes {
		if c == code {
			n++
		}
	}
	return n
}

func TestConcurrentChangesOnOneCustomer(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "10000")
		cust := s.CreateCustomer(t, key, "Acme", false)
		s.SetCredit(t, key, cust, "100")

		// 40 allocations of 10 and 40 take-backs of 7 race each other. Every
		// allocation must land; take-backs may only fail for lack of available
		// credit, and the books must add up whatever the interleaving.
		const n = 40
		codes := parallel(2*n, func(i int) testenv.Response {
			amount := "10"
			if i%2 == 1 {
				amount = "-7"
			}
			return s.Post(t, key, setCredit, map[string]any{"in": map[string]any{"customerId": cust, "amount": amount}})
		})
		for _, c := range codes {
			if c != "" && c != "INSUFFICIENT_AVAILABLE_CREDIT" {
				t.Fatalf("unexpected error %s among %v", c, codes)
			}
		}
		refused := count(codes, "INSUFFICIENT_AVAILABLE_CREDIT")
		want := 100 + n*10 - (n-refused)*7
		c := s.Customer(t, key, cust)
		if c.Credit != fmt.Sprintf("%d.00", want) {
			t.Fatalf("credit = %s, want %d.00 (%d take-backs refused)", c.Credit, want, refused)
		}
		if got := countAllocations(t, s, key); got != 1+2*n-refused {
			t.Fatalf("%d records, want %d", got, 1+2*n-refused)
		}
		if p := readPartner(t, s, key); p.AllocatedCredit != c.Credit {
			t.Fatalf("partner allocated %s, customer credit %s", p.AllocatedCredit, c.Credit)
		}
		assertChain(t, s, key, cust, 100, want)
	})
}

// assertChain checks that the records of a customer, oldest first, chain: each
// starts from the credit the previous one left, and the last ends at final.
func assertChain(t *testing.T, s *testenv.Server, key, cust string, first, final int) {
	t.Helper()
	var out struct {
		Customer struct {
			Allocations struct {
				Nodes []struct{ Amount, CreditBefore, CreditAfter string }
			}
		}
	}
	s.Must(t, key, `query($c: ID!) { customer(id: $c) { allocations(first: 100) { nodes { amount creditBefore creditAfter } } } }`, map[string]any{"c": cust}, &out)
	nodes := out.Customer.Allocations.Nodes
	prev := "0.00"
	for i := len(nodes) - 1; i >= 0; i-- {
		if nodes[i].CreditBefore != prev {
			t.Fatalf("record %d starts at %s, previous ended at %s", i, nodes[i].CreditBefore, prev)
		}
		prev = nodes[i].CreditAfter
	}
	if prev != fmt.Sprintf("%d.00", final) {
		t.Fatalf("records end at %s, want %d.00", prev, final)
	}
}

func TestConcurrentChangesNeverOverdraw(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "300")
		var custs []string
		for i := range 6 {
			custs = append(custs, s.CreateCustomer(t, key, fmt.Sprintf("C%d", i), false))
		}
		// 36 allocations of 10 against a line of 300: exactly 30 fit.
		codes := parallel(36, func(i int) testenv.Response {
			return s.Post(t, key, setCredit, map[string]any{"in": map[string]any{"customerId": custs[i%6], "amount": "10"}})
		})
		if ok, refused := count(codes, ""), count(codes, "PARTNER_CREDIT_EXCEEDED"); ok != 30 || refused != 6 {
			t.Fatalf("%d allocated, %d refused; want 30 and 6: %v", ok, refused, codes)
		}
		if p := readPartner(t, s, key); p != (partnerState{"300.00", "300.00", "0.00"}) {
			t.Fatalf("partner = %+v", p)
		}

		// 30 withdrawals of 15 from one customer: exactly as many succeed as
		// its credit covers.
		var held int
		fmt.Sscanf(s.Customer(t, key, custs[0]).Credit, "%d.00", &held)
		codes = parallel(30, func(int) testenv.Response {
			return s.Post(t, key, withdrawCredit, map[string]any{"in": map[string]any{"customerId": custs[0], "amount": "15"}})
		})
		if ok := count(codes, ""); ok != held/15 || count(codes, "INSUFFICIENT_AVAILABLE_CREDIT") != 30-held/15 {
			t.Fatalf("%d withdrawals of 15 from %d succeeded: %v", ok, held, codes)
		}
		if c := s.Customer(t, key, custs[0]); c.Credit != fmt.Sprintf("%d.00", held%15) {
			t.Fatalf("credit = %s, want %d.00", c.Credit, held%15)
		}
	})
}

func TestConcurrentIdempotentRepeats(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")
		cust := s.CreateCustomer(t, key, "Acme", false)
		ids := make([]string, 30)
		codes := parallel(30, func(i int) testenv.Response {
			r := s.Post(t, key, setCredit, map[string]any{"in": map[string]any{"customerId": cust, "amount": "25", "idempotencyKey": "retry-me"}})
			var out struct{ SetCredit changePayload }
			if len(r.Errors) == 0 {
				if err := jsonUnmarshal(r.Data, &out); err == nil {
					ids[i] = out.SetCredit.Allocation.ID
				}
			}
			return r
		})
		if count(codes, "") != 30 {
			t.Fatalf("repeats failed: %v", codes)
		}
		for _, id := range ids {
			if id != ids[0] || id == "" {
				t.Fatalf("repeats returned different records: %v", ids)
			}
		}
		if c := s.Customer(t, key, cust); c.Credit != "25.00" {
			t.Fatalf("credit = %s: applied more than once", c.Credit)
		}
		if n := countAllocations(t, s, key); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	})
}
