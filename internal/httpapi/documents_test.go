package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/testenv"
)

// Validation compares every pair of fields that merge at one place, so a
// document that repeats a field is quadratic to validate: 6,000 `role`s took
// 2.3 s, and a 4 MiB body of them held a core for hours after its client had
// gone. Such documents are refused before they are validated, naming where.
func TestDocumentsTooCostlyToValidate(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	over := httpapi.MaxMergedFields + 1

	r := s.Fails(t, "COMPLEXITY_LIMIT_EXCEEDED", partner, "{ viewer { "+strings.Repeat("role ", over)+"} }", nil)
	if msg := r.Errors[0].Message; !strings.Contains(msg, fmt.Sprintf("viewer.role is selected %d times", over)) ||
		!strings.Contains(msg, fmt.Sprint(httpapi.MaxMergedFields)) {
		t.Fatalf("the refusal does not say where and the limit: %s", msg)
	}
	// Through fragments, nested: 11 viewers, each with 10 roles.
	nested := "{ " + strings.Repeat("viewer { ...Roles } ", 11) + "} fragment Roles on Viewer { " + strings.Repeat("role ", 10) + "}"
	r = s.Fails(t, "COMPLEXITY_LIMIT_EXCEEDED", partner, nested, nil)
	if !strings.Contains(r.Errors[0].Message, "viewer.role is selected 110 times") {
		t.Fatalf("nested fragments: %s", r.Errors[0].Message)
	}
	// In a fragment no operation uses, which validation checks all the same.
	s.Fails(t, "COMPLEXITY_LIMIT_EXCEEDED", partner, "{ viewer { role } } fragment Unused on Viewer { "+strings.Repeat("role ", over)+"}", nil)

	// 20,000 of them (about 25 s of validation before) are refused at once:
	// the client gives up after 10 s.
	body, _ := json.Marshal(map[string]any{"query": "{ viewer { " + strings.Repeat("role ", 20000) + "} }"})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+partner)
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("20,000 repeated fields: %v", err)
	}
	var out testenv.Response
	json.NewDecoder(res.Body).Decode(&out)
	res.Body.Close()
	if len(out.Errors) != 1 || out.Errors[0].Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("20,000 repeated fields: %+v", out.Errors)
	}

	// 1,000 fragments spread side by side (0.35 s before; 3,500 took 4.3 s):
	// validation compares each pair.
	var spreads, fragments strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&spreads, "...F%d ", i)
		fmt.Fprintf(&fragments, "fragment F%d on Query { a%d: __typename } ", i, i)
	}
	r = s.Fails(t, "COMPLEXITY_LIMIT_EXCEEDED", partner, "{ "+spreads.String()+"} "+fragments.String(), nil)
	if !strings.Contains(r.Errors[0].Message, fmt.Sprintf("more than %d pairs to compare", httpapi.MaxMergePairs)) {
		t.Fatalf("fragments side by side: %s", r.Errors[0].Message)
	}

	// A document of more tokens than MaxTokens is not parsed to the end.
	r = s.Fails(t, "GRAPHQL_PARSE_FAILED", partner, "{ "+strings.Repeat("a: __typename ", httpapi.MaxTokens/3+1)+"}", nil)
	if !strings.Contains(r.Errors[0].Message, fmt.Sprint(httpapi.MaxTokens)) {
		t.Fatalf("token limit: %s", r.Errors[0].Message)
	}

	// Fields repeated up to the limit, as fragments that share fields do,
	// are fine.
	s.Must(t, partner, "{ viewer { "+strings.Repeat("role ", httpapi.MaxMergedFields)+"} }", nil, nil)
	s.Must(t, partner, "{ viewer { ...A ...B role } } fragment A on Viewer { role keyName } fragment B on Viewer { role partner { name } }", nil, nil)
}

// A response lists at most MaxErrors errors: a 4 MiB body of one directive
// repeated drew 220,000 validation errors, 47 MB of JSON.
func TestResponsesListAtMostMaxErrors(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	r := s.Fails(t, "GRAPHQL_VALIDATION_FAILED", partner, "{ viewer { role "+strings.Repeat("@include(if: true) ", 500)+"} }", nil)
	if len(r.Errors) != httpapi.MaxErrors+1 {
		t.Fatalf("%d errors listed, want %d and a last one saying how many more", len(r.Errors), httpapi.MaxErrors+1)
	}
	if last := r.Errors[httpapi.MaxErrors].Message; !strings.Contains(last, "399 more errors") {
		t.Fatalf("the last error says %q, want how many were left out", last)
	}
}

// A name longer than MaxNameLength is refused before validation: a field of
// 4 million characters took 1.4 s to refuse (the suggestions weigh it against
// every field), and its error echoed it whole. No message is longer than
// MaxMessageLength either.
func TestLongNamesAndMessages(t *testing.T) {
	s, partner, _, _ := usageSetup(t, testenv.SQLite(t), "100", false)
	long := strings.Repeat("a", httpapi.MaxNameLength+1)
	for _, q := range []string{
		"{ " + long + " }",
		"query " + long + " { viewer { role } }",
		"query($" + long + ": Int) { viewer { role } }",
		"{ viewer { role @" + long + " } }",
	} {
		r := s.Fails(t, "BAD_USER_INPUT", partner, q, nil)
		if msg := r.Errors[0].Message; msg != fmt.Sprintf("a name in the document is %d characters long: names are at most %d", len(long), httpapi.MaxNameLength) {
			t.Errorf("%.40s…: %s", q, msg)
		}
	}
	// The longest name allowed is answered as usual, its message bounded.
	r := s.Fails(t, "GRAPHQL_VALIDATION_FAILED", partner, "{ "+strings.Repeat("a", httpapi.MaxNameLength)+" }", nil)
	if !strings.HasPrefix(r.Errors[0].Message, `Cannot query field "aaaa`) {
		t.Fatalf("an unknown field: %s", r.Errors[0].Message)
	}
	// operationName names the request in logs and metrics.
	body, _ := json.Marshal(map[string]any{"query": "{ viewer { role } }", "operationName": long})
	r = s.PostRaw(t, partner, body)
	if len(r.Errors) != 1 || r.Errors[0].Message != fmt.Sprintf("operationName is %d characters long: names are at most %d", len(long), httpapi.MaxNameLength) {
		t.Fatalf("a long operationName: %+v", r.Errors)
	}
	// What an error quotes of the request is bounded: a value that is not an
	// ID, an unknown field of a variable's input object (in the path).
	huge := strings.Repeat("x", 100000)
	r = s.Fails(t, "BAD_USER_INPUT", partner, `query($v: ID!) { customer(id: $v) { name } }`, map[string]any{"v": huge})
	if n := len([]rune(r.Errors[0].Message)); n > httpapi.MaxMessageLength+1 || !strings.HasSuffix(r.Errors[0].Message, "…") {
		t.Fatalf("a long ID: a message of %d characters", n)
	}
	raw, _ := json.Marshal(map[string]any{"query": `query($v: CustomerFilter) { customers(filter: $v) { totalCount } }`, "variables": map[string]any{"v": map[string]any{huge: 1}}})
	r = s.PostRaw(t, partner, raw)
	if len(r.Errors) != 1 || len(fmt.Sprint(r.Errors[0].Path)) > 2*httpapi.MaxNameLength {
		t.Fatalf("an unknown field of %d characters: %.300v", len(huge), r.Errors)
	}
}
