package testenv

import "testing"

// CreatePartner creates a partner through the API and a PARTNER key for it; it
// returns the partner's id and the key.
func (s *Server) CreatePartner(t testing.TB, name, creditLine string) (id, key string) {
	t.Helper()
	var out struct {
		CreatePartner struct{ ID string }
	}
	s.Must(t, AdminToken, `mutation($in: CreatePartnerInput!) { createPartner(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": name, "creditLine": creditLine}}, &out)
	return out.CreatePartner.ID, s.CreateKey(t, name+" key", "PARTNER", out.CreatePartner.ID)
}

// CreateKey creates an API key through the API and returns its secret.
func (s *Server) CreateKey(t testing.TB, name, role, partnerID string) string {
	t.Helper()
	in := map[string]any{"name": name, "role": role}
	if partnerID != "" {
		in["partnerId"] = partnerID
	}
	var out struct {
		CreateAPIKey struct{ Key string } `json:"createApiKey"`
	}
	s.Must(t, AdminToken, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { key } }`,
		map[string]any{"in": in}, &out)
	return out.CreateAPIKey.Key
}

// CreateCustomer creates a customer with a PARTNER key and returns its id.
func (s *Server) CreateCustomer(t testing.TB, key, name string, billingPermission bool) string {
	t.Helper()
	var out struct {
		CreateCustomer struct{ ID string }
	}
	s.Must(t, key, `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": name, "billingPermission": billingPermission}}, &out)
	return out.CreateCustomer.ID
}

// SetCredit changes a customer's credit and fails the test if it is refused.
func (s *Server) SetCredit(t testing.TB, key, customerID, amount string) {
	t.Helper()
	s.Must(t, key, `mutation($in: SetCreditInput!) { setCredit(input: $in) { allocation { id } } }`,
		map[string]any{"in": map[string]any{"customerId": customerID, "amount": amount}}, nil)
}

// CustomerState is what tests read of a customer.
type CustomerState struct {
	ID           string
	Credit       string
	Used         string
	Available    string
	UsagePercent float64
	Status       string
}

// CustomerFields selects CustomerState.
const CustomerFields = `id credit used available usagePercent status`

// Customer reads a customer with key; it fails the test when it is not visible.
func (s *Server) Customer(t testing.TB, key, id string) CustomerState {
	t.Helper()
	var out struct{ Customer *CustomerState }
	s.Must(t, key, `query($id: ID!) { customer(id: $id) { `+CustomerFields+` } }`, map[string]any{"id": id}, &out)
	if out.Customer == nil {
		t.Fatalf("customer %s is not visible", id)
	}
	return *out.Customer
}
