package httpapi_test

import (
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

const setCredit = `mutation($in: SetCreditInput!) { setCredit(input: $in) {
	allocation { id kind amount creditBefore creditAfter availableAfter operator remark createdAt customer { id } }
	customer { ` + testenv.CustomerFields + ` } } }`

const withdrawCredit = `mutation($in: WithdrawCreditInput!) { withdrawCredit(input: $in) {
	allocation { id kind amount creditBefore creditAfter availableAfter operator remark createdAt customer { id } }
	customer { ` + testenv.CustomerFields + ` } } }`

type allocation struct {
	ID, Kind, Amount, CreditBefore, CreditAfter, AvailableAfter, Operator, CreatedAt string
	Remark                                                                           *string
	Customer                                                                         struct{ ID string }
}

type changePayload struct {
	Allocation allocation
	Customer   testenv.CustomerState
}

func change(t *testing.T, s *testenv.Server, key, op string, in map[string]any) changePayload {
	t.Helper()
	var out struct{ SetCredit, WithdrawCredit *changePayload }
	s.Must(t, key, op, map[string]any{"in": in}, &out)
	if out.SetCredit != nil {
		return *out.SetCredit
	}
	return *out.WithdrawCredit
}

type partnerState struct{ CreditLine, AllocatedCredit, RemainingCredit string }

func readPartner(t *testing.T, s *testenv.Server, key string) partnerState {
	t.Helper()
	var out struct{ Partner partnerState }
	s.Must(t, key, `{ partner { creditLine allocatedCredit remainingCredit } }`, nil, &out)
	return out.Partner
}

func countAllocations(t *testing.T, s *testenv.Server, key string) int {
	t.Helper()
	var out struct{ CreditAllocations struct{ TotalCount int } }
	s.Must(t, key, `{ creditAllocations { totalCount } }`, nil, &out)
	return out.CreditAllocations.TotalCount
}

func TestSetAndWithdrawCredit(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")
		cust := s.CreateCustomer(t, key, "Acme", false)

		if c := s.Customer(t, key, cust); c.Credit != "0.00" || c.Available != "0.00" || c.Status != "SUSPENDED" || c.UsagePercent != 0 {
			t.Fatalf("new customer = %+v", c)
		}

		got := change(t, s, key, setCredit, map[string]any{"customerId": cust, "amount": "250.50", "remark": "welcome"})
		a := got.Allocation
		if a.Kind != "ALLOCATE" || a.Amount != "250.50" || a.CreditBefore != "0.00" || a.CreditAfter != "250.50" ||
			a.AvailableAfter != "250.50" || a.Operator != "Reseller key" || a.Remark == nil || *a.Remark != "welcome" ||
			a.Customer.ID != cust || a.CreatedAt == "" {
			t.Fatalf("allocation = %+v", a)
		}
		if c := got.Customer; c.Credit != "250.50" || c.Available != "250.50" || c.Status != "ACTIVE" {
			t.Fatalf("customer after allocation = %+v", c)
		}
		if p := readPartner(t, s, key); p != (partnerState{"1000.00", "250.50", "749.50"}) {
			t.Fatalf("partner = %+v", p)
		}

		// A negative setCredit takes back.
		got = change(t, s, key, setCredit, map[string]any{"customerId": cust, "amount": -50})
		if got.Allocation.Kind != "WITHDRAW" || got.Allocation.Amount != "-50.00" || got.Customer.Credit != "200.50" {
			t.Fatalf("take back = %+v", got)
		}
		// withdrawCredit with an amount takes that much back.
		got = change(t, s, key, withdrawCredit, map[string]any{"customerId": cust, "amount": "0.50"})
		if got.Allocation.Amount != "-0.50" || got.Allocation.CreditBefore != "200.50" || got.Customer.Credit != "200.00" {
			t.Fatalf("withdraw = %+v", got)
		}
		// Without one, all that is available; credit returns to the partner.
		got = change(t, s, key, withdrawCredit, map[string]any{"customerId": cust})
		if got.Allocation.Amount != "-200.00" || got.Allocation.AvailableAfter != "0.00" || got.Customer.Status != "SUSPENDED" {
			t.Fatalf("withdraw all = %+v", got)
		}
		if p := readPartner(t, s, key); p != (partnerState{"1000.00", "0.00", "1000.00"}) {
			t.Fatalf("partner after withdrawals = %+v", p)
		}
		if n := countAllocations(t, s, key); n != 4 {
			t.Fatalf("%d allocation records, want 4", n)
		}
	})
}

func TestRefusedChangesChangeNothing(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "100")
		a := s.CreateCustomer(t, key, "A", false)
		b := s.CreateCustomer(t, key, "B", false)
		s.SetCredit(t, key, a, "60")

		// The partner's line is shared by its customers.
		s.Fails(t, "PARTNER_CREDIT_EXCEEDED", key, setCredit, map[string]any{"in": map[string]any{"customerId": b, "amount": "40.01"}})
		s.SetCredit(t, key, b, "40")
		s.Fails(t, "PARTNER_CREDIT_EXCEEDED", key, setCredit, map[string]any{"in": map[string]any{"customerId": a, "amount": "0.01"}})

		// Taking back more than is available.
		s.Fails(t, "INSUFFICIENT_AVAILABLE_CREDIT", key, setCredit, map[string]any{"in": map[string]any{"customerId": a, "amount": "-60.01"}})
		s.Fails(t, "INSUFFICIENT_AVAILABLE_CREDIT", key, withdrawCredit, map[string]any{"in": map[string]any{"customerId": a, "amount": "60.01"}})
		s.Fails(t, "BAD_USER_INPUT", key, setCredit, map[string]any{"in": map[string]any{"customerId": a, "amount": "0"}})
		s.Fails(t, "BAD_USER_INPUT", key, withdrawCredit, map[string]any{"in": map[string]any{"customerId": a, "amount": "-5"}})
		s.Fails(t, "BAD_USER_INPUT", key, withdrawCredit, map[string]any{"in": map[string]any{"customerId": a, "amount": "0"}})
		s.Fails(t, "NOT_FOUND", key, setCredit, map[string]any{"in": map[string]any{"customerId": "999999", "amount": "1"}})

		// Nothing available at all: even "withdraw everything" is refused.
		empty := s.CreateCustomer(t, key, "Empty", false)
		s.Fails(t, "INSUFFICIENT_AVAILABLE_CREDIT", key, withdrawCredit, map[string]any{"in": map[string]any{"customerId": empty}})
		s.Fails(t, "INSUFFICIENT_AVAILABLE_CREDIT", key, setCredit, map[string]any{"in": map[string]any{"customerId": empty, "amount": "-1"}})

		if c := s.Customer(t, key, a); c.Credit != "60.00" {
			t.Fatalf("A = %+v", c)
		}
		if p := readPartner(t, s, key); p != (partnerState{"100.00", "100.00", "0.00"}) {
			t.Fatalf("partner = %+v", p)
		}
		if n := countAllocations(t, s, key); n != 2 {
			t.Fatalf("%d allocation records, want 2: refused changes must record nothing", n)
		}
	})
}

func TestStatus(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "100")
		plain := s.CreateCustomer(t, key, "Plain", false)
		billing := s.CreateCustomer(t, key, "Billing", true)

		status := func(id string) string { return s.Customer(t, key, id).Status }
		if status(plain) != "SUSPENDED" || status(billing) != "PURCHASES_BLOCKED" {
			t.Fatalf("new customers: %s, %s", status(plain), status(billing))
		}
		s.SetCredit(t, key, plain, "10")
		if status(plain) != "ACTIVE" {
			t.Fatal("credit did not make the customer ACTIVE")
		}
		change(t, s, key, withdrawCredit, map[string]any{"customerId": plain})
		if status(plain) != "SUSPENDED" {
			t.Fatal("withdrawing all credit did not suspend")
		}

		// The non-stop privilege keeps services running at zero.
		var out struct {
			SetNonStopPrivilege struct {
				NonStopPrivilege bool
				Status           string
			}
		}
		op := `mutation($c: ID!, $on: Boolean!) { setNonStopPrivilege(customerId: $c, enabled: $on) { nonStopPrivilege status } }`
		s.Must(t, testenv.AdminToken, op, map[string]any{"c": plain, "on": true}, &out)
		if !out.SetNonStopPrivilege.NonStopPrivilege || out.SetNonStopPrivilege.Status != "PURCHASES_BLOCKED" {
			t.Fatalf("non-stop on: %+v", out)
		}
		s.Must(t, testenv.AdminToken, op, map[string]any{"c": plain, "on": false}, &out)
		if out.SetNonStopPrivilege.Status != "SUSPENDED" {
			t.Fatalf("non-stop off: %+v", out)
		}
		s.Fails(t, "NOT_FOUND", testenv.AdminToken, op, map[string]any{"c": "999999", "on": true})
		// Listing by status uses the same rule.
		var list struct {
			Customers struct{ Nodes []struct{ Name string } }
		}
		s.Must(t, key, `{ customers(filter: {status: PURCHASES_BLOCKED}) { nodes { name } } }`, nil, &list)
		if len(list.Customers.Nodes) != 1 || list.Customers.Nodes[0].Name != "Billing" {
			t.Fatalf("PURCHASES_BLOCKED customers = %+v", list)
		}
	})
}

func TestPurchaseCheck(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "100")
		cust := s.CreateCustomer(t, key, "Acme", true)
		op := `query($c: ID!, $a: Decimal!) { purchaseCheck(customerId: $c, amount: $a) { allowed reason available status } }`
		type check struct {
			Allowed           bool
			Reason            *string
			Available, Status string
		}
		run := func(amount string) check {
			var out struct{ PurchaseCheck check }
			s.Must(t, key, op, map[string]any{"c": cust, "a": amount}, &out)
			return out.PurchaseCheck
		}
		if c := run("1"); c.Allowed || c.Reason == nil || c.Status != "PURCHASES_BLOCKED" {
			t.Fatalf("blocked customer: %+v", c)
		}
		s.SetCredit(t, key, cust, "30")
		if c := run("30"); !c.Allowed || c.Reason != nil || c.Available != "30.00" || c.Status != "ACTIVE" {
			t.Fatalf("within available: %+v", c)
		}
		if c := run("30.01"); c.Allowed || c.Reason == nil {
			t.Fatalf("over available: %+v", c)
		}
		s.Fails(t, "BAD_USER_INPUT", key, op, map[string]any{"c": cust, "a": "0"})
		s.Fails(t, "NOT_FOUND", key, op, map[string]any{"c": "999999", "a": "1"})
	})
}

func TestIdempotency(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")
		cust := s.CreateCustomer(t, key, "Acme", false)
		in := map[string]any{"customerId": cust, "amount": "100", "idempotencyKey": "order-1"}

		first := change(t, s, key, setCredit, in)
		again := change(t, s, key, setCredit, in)
		if again.Allocation != first.Allocation || again.Customer.Credit != "100.00" {
			t.Fatalf("repeat returned %+v, first was %+v", again, first)
		}
		in["amount"] = "101"
		s.Fails(t, "IDEMPOTENCY_CONFLICT", key, setCredit, map[string]any{"in": in})
		// The same key for another operation is another input too.
		s.Fails(t, "IDEMPOTENCY_CONFLICT", key, withdrawCredit, map[string]any{"in": map[string]any{"customerId": cust, "idempotencyKey": "order-1"}})

		w := map[string]any{"customerId": cust, "idempotencyKey": "close-1"}
		firstW := change(t, s, key, withdrawCredit, w)
		againW := change(t, s, key, withdrawCredit, w)
		if againW.Allocation != firstW.Allocation || firstW.Allocation.Amount != "-100.00" {
			t.Fatalf("withdraw-all repeat: %+v vs %+v", againW, firstW)
		}

		// Keys are scoped to the partner: another partner may use the same one.
		_, other := s.CreatePartner(t, "Other", "1000")
		oc := s.CreateCustomer(t, other, "Zed", false)
		change(t, s, other, setCredit, map[string]any{"customerId": oc, "amount": "5", "idempotencyKey": "order-1"})

		if n := countAllocations(t, s, key); n != 2 {
			t.Fatalf("%d records, want 2", n)
		}
	})
}

func TestUpdateCustomer(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "100")
		var made struct{ CreateCustomer struct{ ID string } }
		s.Must(t, key, `mutation { createCustomer(input: {name: "Acme", email: "a@acme.example", remark: "old"}) { id } }`, nil, &made)
		id := made.CreateCustomer.ID

		op := `mutation($in: UpdateCustomerInput!) { updateCustomer(input: $in) { name email remark billingPermission status } }`
		type customer struct {
			Name              string
			Email, Remark     *string
			BillingPermission bool
			Status            string
		}
		var out struct{ UpdateCustomer customer }
		s.Must(t, key, op, map[string]any{"in": map[string]any{"customerId": id, "name": "Acme Inc", "email": "", "billingPermission": true}}, &out)
		c := out.UpdateCustomer
		if c.Name != "Acme Inc" || c.Email != nil || c.Remark == nil || *c.Remark != "old" || !c.BillingPermission || c.Status != "PURCHASES_BLOCKED" {
			t.Fatalf("updated customer = %+v", c)
		}
		s.Fails(t, "BAD_USER_INPUT", key, op, map[string]any{"in": map[string]any{"customerId": id, "email": "nope"}})
		s.Fails(t, "BAD_USER_INPUT", key, op, map[string]any{"in": map[string]any{"customerId": id, "name": " "}})
		_, other := s.CreatePartner(t, "Other", "100")
		s.Fails(t, "NOT_FOUND", other, op, map[string]any{"in": map[string]any{"customerId": id, "name": "Mine"}})
		if got := s.Customer(t, key, id); got.Status != "PURCHASES_BLOCKED" {
			t.Fatalf("after refused updates: %+v", got)
		}
	})
}
