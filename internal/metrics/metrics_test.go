package metrics

import (
	"fmt"
	"strings"
	"testing"
)

// Clients name their operations; the label keeps the first names it sees and
// folds the rest, so that a client cannot grow Prometheus without bound.
func TestOperationNamesAreBounded(t *testing.T) {
	b := &boundedNames{limit: 3, seen: map[string]bool{}}
	for _, c := range []struct{ in, want string }{
		{"", "anonymous"},
		{"Dashboard", "Dashboard"},
		{"Grant", "Grant"},
		{"Usage", "Usage"},
		{"Fourth", "other"},
		{"Dashboard", "Dashboard"},
		{strings.Repeat("x", 65), "other"},
	} {
		if got := b.label(c.in); got != c.want {
			t.Errorf("label(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	many := &boundedNames{limit: maxOperationNames, seen: map[string]bool{}}
	for i := range 1000 {
		many.label(fmt.Sprintf("Op%d", i))
	}
	if len(many.seen) != maxOperationNames {
		t.Fatalf("%d names kept", len(many.seen))
	}
}
