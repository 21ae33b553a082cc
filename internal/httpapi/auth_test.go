package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

func TestAuthentication(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")

		s.Fails(t, "UNAUTHENTICATED", "", `{ viewer { role } }`, nil)
		s.Fails(t, "UNAUTHENTICATED", "ck_not-a-key-that-exists-anywhere-at-all", `{ viewer { role } }`, nil)

		var v struct {
			Viewer struct {
				Role, KeyName string
				Partner       struct{ Name string }
			}
		}
		s.Must(t, key, `{ viewer { role keyName partner { name } } }`, nil, &v)
		if v.Viewer.Role != "PARTNER" || v.Viewer.KeyName != "Reseller key" || v.Viewer.Partner.Name != "Reseller" {
			t.Fatalf("viewer = %+v", v.Viewer)
		}

		// Schema introspection needs no key, so the playground can show the docs.
		s.Must(t, "", `{ __schema { queryType { name } } }`, nil, nil)

		// A malformed header is refused like a bad key.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"{ viewer { role } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Basic abc")
		res, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(body), `"UNAUTHENTICATED"`) {
			t.Fatalf("Basic auth: %s", body)
		}
	})
}

func TestAPIKeys(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		partnerID, _ := s.CreatePartner(t, "Reseller", "1000")

		var created struct {
			CreateAPIKey struct {
				Key    string
				APIKey struct {
					ID, Name, Role string
					Partner        struct{ ID string }
					RevokedAt      *string
				} `json:"apiKey"`
			} `json:"createApiKey"`
		}
		s.Must(t, testenv.AdminToken, `mutation($p: ID) { createApiKey(input: {name: "ops", role: PARTNER, partnerId: $p}) {
			key apiKey { id name role partner { id } revokedAt } } }`, map[string]any{"p": partnerID}, &created)
		k := created.CreateAPIKey
		if len(k.Key) < 32 || k.APIKey.Role != "PARTNER" || k.APIKey.Partner.ID != partnerID || k.APIKey.RevokedAt != nil {
			t.Fatalf("created key = %+v", k)
		}
		var stored int64
		db.Table("api_keys").Where("hash = ?", k.Key).Count(&stored)
		if stored != 0 {
			t.Fatal("the key itself is stored; only its hash may be")
		}
		s.Must(t, k.Key, `{ viewer { role } }`, nil, nil)

		// Only ADMIN manages keys; PARTNER keys need a partner; others may not have one.
		s.Fails(t, "FORBIDDEN", k.Key, `mutation { createApiKey(input: {name: "x", role: ADMIN}) { key } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", testenv.AdminToken, `mutation { createApiKey(input: {name: "x", role: PARTNER}) { key } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", testenv.AdminToken, `mutation($p: ID) { createApiKey(input: {name: "x", role: BILLING, partnerId: $p}) { key } }`, map[string]any{"p": partnerID})
		s.Fails(t, "NOT_FOUND", testenv.AdminToken, `mutation { createApiKey(input: {name: "x", role: PARTNER, partnerId: "999999"}) { key } }`, nil)

		// A revoked key is refused on its next request.
		s.Fails(t, "FORBIDDEN", k.Key, `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, map[string]any{"id": k.APIKey.ID})
		var revoked struct {
			RevokeAPIKey struct{ RevokedAt *string } `json:"revokeApiKey"`
		}
		s.Must(t, testenv.AdminToken, `mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }`, map[string]any{"id": k.APIKey.ID}, &revoked)
		if revoked.RevokeAPIKey.RevokedAt == nil {
			t.Fatal("revokedAt not set")
		}
		s.Fails(t, "UNAUTHENTICATED", k.Key, `{ viewer { role } }`, nil)
		s.Fails(t, "NOT_FOUND", testenv.AdminToken, `mutation { revokeApiKey(id: "999999") { id } }`, nil)
	})
}

func TestRoles(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		partnerID, partner := s.CreatePartner(t, "Reseller", "1000")
		billing := s.CreateKey(t, "feed", "BILLING", "")
		cust := s.CreateCustomer(t, partner, "Acme", false)

		// BILLING records usage and nothing else.
		for _, op := range []string{
			`{ customers { totalCount } }`,
			`{ creditAllocations { totalCount } }`,
			`{ partner { id } }`,
			`mutation { createCustomer(input: {name: "x"}) { id } }`,
		} {
			s.Fails(t, "FORBIDDEN", billing, op, nil)
		}
		s.Fails(t, "FORBIDDEN", billing, `query($c: ID!) { purchaseCheck(customerId: $c, amount: "1") { allowed } }`, map[string]any{"c": cust})
		s.Fails(t, "FORBIDDEN", billing, `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "1"}) { customer { id } } }`, map[string]any{"c": cust})

		// ADMIN-only operations.
		s.Fails(t, "FORBIDDEN", partner, `mutation { createPartner(input: {name: "x", creditLine: "1"}) { id } }`, nil)
		s.Fails(t, "FORBIDDEN", partner, `mutation($c: ID!) { setNonStopPrivilege(customerId: $c, enabled: true) { id } }`, map[string]any{"c": cust})
		s.Fails(t, "FORBIDDEN", partner, `{ partners { totalCount } }`, nil)

		// ADMIN acts on any partner, naming it where a PARTNER key has its own.
		s.Fails(t, "BAD_USER_INPUT", testenv.AdminToken, `mutation { createCustomer(input: {name: "x"}) { id } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", testenv.AdminToken, `{ partner { id } }`, nil)
		var named struct{ Partner struct{ Name string } }
		s.Must(t, testenv.AdminToken, `query($p: ID) { partner(id: $p) { name } }`, map[string]any{"p": partnerID}, &named)
		if named.Partner.Name != "Reseller" {
			t.Fatalf("ADMIN partner(id) = %+v", named)
		}
		var made struct{ CreateCustomer struct{ ID string } }
		s.Must(t, testenv.AdminToken, `mutation($p: ID) { createCustomer(input: {name: "By admin", partnerId: $p}) { id } }`, map[string]any{"p": partnerID}, &made)
		var list struct{ Customers struct{ TotalCount int } }
		s.Must(t, partner, `{ customers { totalCount } }`, nil, &list)
		if list.Customers.TotalCount != 2 {
			t.Fatalf("partner sees %d customers, want 2", list.Customers.TotalCount)
		}
		s.SetCredit(t, testenv.AdminToken, made.CreateCustomer.ID, "10")
		var rec struct {
			CreditAllocations struct{ Nodes []struct{ Operator string } }
		}
		s.Must(t, partner, `{ creditAllocations { nodes { operator } } }`, nil, &rec)
		if len(rec.CreditAllocations.Nodes) != 1 || rec.CreditAllocations.Nodes[0].Operator != "ADMIN_TOKEN" {
			t.Fatalf("records = %+v", rec)
		}
		var partners struct {
			Partners struct {
				TotalCount int
				Nodes      []struct{ Name, RemainingCredit string }
			}
		}
		s.Must(t, testenv.AdminToken, `{ partners { totalCount nodes { name remainingCredit } } }`, nil, &partners)
		if partners.Partners.TotalCount != 1 || partners.Partners.Nodes[0].RemainingCredit != "990.00" {
			t.Fatalf("partners = %+v", partners)
		}
	})
}

func TestListAPIKeys(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		aID, a := s.CreatePartner(t, "Alpha", "1000")
		s.CreatePartner(t, "Beta", "1000")
		s.CreateKey(t, "feed", "BILLING", "")
		second := s.CreateKey(t, "Alpha second", "PARTNER", aID)

		type keys struct {
			APIKeys struct {
				TotalCount int
				Nodes      []struct{ ID, Name, Role string }
			} `json:"apiKeys"`
		}
		query := `query($p: ID, $r: Boolean) { apiKeys(partnerId: $p, includeRevoked: $r) { totalCount nodes { id name role } } }`
		var all keys
		s.Must(t, testenv.AdminToken, query, nil, &all)
		if all.APIKeys.TotalCount != 4 {
			t.Fatalf("%d keys, want 4: %+v", all.APIKeys.TotalCount, all)
		}
		var alpha keys
		s.Must(t, testenv.AdminToken, query, map[string]any{"p": aID}, &alpha)
		if alpha.APIKeys.TotalCount != 2 || alpha.APIKeys.Nodes[0].Name != "Alpha key" {
			t.Fatalf("Alpha's keys: %+v", alpha)
		}
		// Revoked keys are left out unless asked for.
		s.Must(t, testenv.AdminToken, `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, map[string]any{"id": alpha.APIKeys.Nodes[1].ID}, nil)
		s.Fails(t, "UNAUTHENTICATED", second, `{ viewer { role } }`, nil)
		s.Must(t, testenv.AdminToken, query, map[string]any{"p": aID}, &alpha)
		if alpha.APIKeys.TotalCount != 1 {
			t.Fatalf("revoked key still listed: %+v", alpha)
		}
		s.Must(t, testenv.AdminToken, query, map[string]any{"p": aID, "r": true}, &alpha)
		if alpha.APIKeys.TotalCount != 2 {
			t.Fatalf("includeRevoked: %+v", alpha)
		}
		s.Fails(t, "FORBIDDEN", a, `{ apiKeys { totalCount } }`, nil)
	})
}

func TestSetCreditLine(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		id, key := s.CreatePartner(t, "Reseller", "100")
		cust := s.CreateCustomer(t, key, "Acme", false)
		s.SetCredit(t, key, cust, "80")

		op := `mutation($p: ID!, $l: Decimal!) { setCreditLine(partnerId: $p, creditLine: $l) { creditLine allocatedCredit remainingCredit } }`
		s.Fails(t, "PARTNER_CREDIT_EXCEEDED", testenv.AdminToken, op, map[string]any{"p": id, "l": "79.99"})
		s.Fails(t, "FORBIDDEN", key, op, map[string]any{"p": id, "l": "1000"})
		s.Fails(t, "NOT_FOUND", testenv.AdminToken, op, map[string]any{"p": "999999", "l": "1000"})
		var out struct{ SetCreditLine partnerState }
		s.Must(t, testenv.AdminToken, op, map[string]any{"p": id, "l": "500"}, &out)
		if out.SetCreditLine != (partnerState{"500.00", "80.00", "420.00"}) {
			t.Fatalf("after raising the line: %+v", out)
		}
		s.SetCredit(t, key, cust, "420")
		s.Fails(t, "PARTNER_CREDIT_EXCEEDED", key, setCredit, map[string]any{"in": map[string]any{"customerId": cust, "amount": "0.01"}})
	})
}
