package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/testenv"
)

// apolloAccept is what Apollo Client's HTTP link asks for.
const apolloAccept = "application/graphql-response+json,application/json;q=0.9"

// persisted is a request as Apollo Client's persisted-query link and urql's
// persistedExchange send it: the hash always, the text only when asked for.
type persisted struct {
	name  string // the operation's name, which Apollo sends beside the hash
	query string
	vars  map[string]any
}

func (p persisted) hash() string {
	sum := sha256.Sum256([]byte(p.query))
	return hex.EncodeToString(sum[:])
}

func (p persisted) extensions(version int, hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": version, "sha256Hash": hash}}
}

// post sends the hash, with the text when withText, as Apollo does.
func (p persisted) post(t *testing.T, s *testenv.Server, key, accept string, withText bool) (int, testenv.Response) {
	t.Helper()
	body := map[string]any{"operationName": p.name, "variables": p.vars, "extensions": p.extensions(1, p.hash())}
	if withText {
		body["query"] = p.query
	}
	b, _ := json.Marshal(body)
	return do(t, s, http.MethodPost, "application/json", accept, key, string(b))
}

// get sends the hash alone as a GET, as Apollo's useGETForHashedQueries does.
func (p persisted) get(t *testing.T, s *testenv.Server, key string) (int, testenv.Response) {
	t.Helper()
	vars, _ := json.Marshal(p.vars)
	ext, _ := json.Marshal(p.extensions(1, p.hash()))
	q := url.Values{"variables": {string(vars)}, "extensions": {string(ext)}}
	res, raw := exchange(t, s, http.MethodGet, "?"+q.Encode(), map[string]string{"Accept": apolloAccept, "Authorization": bearer(key)}, "")
	return res.StatusCode, decoded(t, res, raw)
}

// customerNames decodes the customers query's answer.
func customerNames(t *testing.T, r testenv.Response) []string {
	t.Helper()
	var out struct {
		Customers struct{ Nodes []struct{ Name string } }
	}
	if len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil {
		t.Fatalf("customers: %s %+v", r.Data, r.Errors)
	}
	var names []string
	for _, n := range out.Customers.Nodes {
		names = append(names, n.Name)
	}
	return names
}

// An app using automatic persisted queries sends a hash; the server asks for
// the text once (PersistedQueryNotFound, the answer those clients retry on),
// and from then on runs the hash alone, by POST or GET. The texts are kept per
// key: another partner's key is asked for its own and sees its own customers.
func TestAutomaticPersistedQueries(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	_, other := s.CreatePartner(t, "Other", "1000")
	s.CreateCustomer(t, other, "Other's customer", false)
	p := persisted{name: "Customers", query: `query Customers($n: Int!) { customers(first: $n) { nodes { name } } }`, vars: map[string]any{"n": 10}}

	notFound := func(who string, status int, r testenv.Response, wantStatus int) {
		t.Helper()
		if status != wantStatus || len(r.Errors) != 1 || r.Errors[0].Message != "PersistedQueryNotFound" || r.Errors[0].Code() != "PERSISTED_QUERY_NOT_FOUND" {
			t.Fatalf("%s: %d %s %+v, want %d PersistedQueryNotFound", who, status, r.Data, r.Errors, wantStatus)
		}
	}
	// Apollo accepts application/graphql-response+json: a request error is a
	// 400 without data; a plain JSON client gets it with a 200.
	status, r := p.post(t, s, partner, apolloAccept, false)
	notFound("first hash", status, r, http.StatusBadRequest)
	if len(r.Data) != 0 {
		t.Fatalf("a request that did not run answered data: %s", r.Data)
	}
	status, r = p.post(t, s, partner, "application/json", false)
	notFound("first hash, plain JSON", status, r, http.StatusOK)

	_, r = p.post(t, s, partner, apolloAccept, true)
	if got := customerNames(t, r); len(got) != 1 || got[0] != "Acme" {
		t.Fatalf("with its text: %v", got)
	}
	_, r = p.post(t, s, partner, apolloAccept, false)
	if got := customerNames(t, r); len(got) != 1 || got[0] != "Acme" {
		t.Fatalf("the hash alone, after: %v", got)
	}
	_, r = p.get(t, s, partner)
	if got := customerNames(t, r); len(got) != 1 || got[0] != "Acme" {
		t.Fatalf("the hash alone by GET: %v", got)
	}

	status, r = p.post(t, s, other, apolloAccept, false)
	notFound("another partner's key", status, r, http.StatusBadRequest)
	_, r = p.post(t, s, other, apolloAccept, true)
	if got := customerNames(t, r); len(got) != 1 || got[0] != "Other's customer" {
		t.Fatalf("another partner's key, with the text: %v", got)
	}
}

// A malformed persisted query is the client's error, coded and explained; a
// text longer than httpapi.MaxPersistedQueryBytes runs but is not kept.
func TestPersistedQueryRefusals(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	p := persisted{query: `{ customers(first: 5) { nodes { name } } }`}
	for _, c := range []struct {
		name, body, message string
	}{
		{"hash of another text", `{"query": "{ viewer { role } }", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "` + p.hash() + `"}}}`,
			"hash does not match"},
		{"unknown version", `{"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "` + p.hash() + `"}}}`, "version"},
		{"not an object", `{"extensions": {"persistedQuery": "yes"}}`, "invalid"},
	} {
		for accept, want := range map[string]int{apolloAccept: http.StatusBadRequest, "application/json": http.StatusOK} {
			status, r := do(t, s, http.MethodPost, "application/json", accept, partner, c.body)
			if status != want || len(r.Errors) != 1 || r.Errors[0].Code() != "BAD_REQUEST" || !strings.Contains(r.Errors[0].Message, c.message) {
				t.Errorf("%s (%s): %d %+v, want %d BAD_REQUEST saying %q", c.name, accept, status, r.Errors, want, c.message)
			}
		}
	}

	long := persisted{query: p.query + " #" + strings.Repeat("x", httpapi.MaxPersistedQueryBytes)}
	if _, r := long.post(t, s, partner, apolloAccept, true); len(customerNames(t, r)) != 1 {
		t.Fatal("a long text does not run")
	}
	if status, r := long.post(t, s, partner, apolloAccept, false); status != http.StatusBadRequest || len(r.Errors) != 1 || r.Errors[0].Code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("a text over %d bytes was kept: %d %+v", httpapi.MaxPersistedQueryBytes, status, r.Errors)
	}
}
