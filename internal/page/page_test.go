package page

import (
	"testing"

	"github.com/cloudreseller/credit/internal/errs"
)

// Any text given as a cursor is either one this package made, which reads
// back to the same position, or BAD_USER_INPUT.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{Cursor{Value: "2026-01-01T00:00:00Z", ID: 7}.Encode(), Cursor{ID: 1}.Encode(), "", "abc", "eyJ2IjoiIiwiaSI6MH0", "eyJ4IjoxfQ", "%%%"} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, after string, first int) {
		req, err := Args{First: &first, After: &after}.Parse()
		if err != nil {
			if errs.CodeOf(err) != errs.BadUserInput {
				t.Fatalf("Parse(first %d, after %q): %v, want BAD_USER_INPUT", first, after, err)
			}
			return
		}
		if req.Limit < 1 || req.Limit > Max || req.After == nil || req.After.ID == 0 {
			t.Fatalf("Parse(first %d, after %q) = %+v", first, after, req)
		}
		back, err := decode(req.After.Encode())
		if err != nil || back != *req.After {
			t.Fatalf("cursor %q reads back as %+v, %v", after, back, err)
		}
	})
}

func TestArgs(t *testing.T) {
	zero, big, ok := 0, Max+1, 5
	for _, c := range []struct {
		args  Args
		limit int
		bad   bool
	}{
		{Args{}, Default, false},
		{Args{First: &ok}, 5, false},
		{Args{First: &zero}, 0, true},
		{Args{First: &big}, 0, true},
	} {
		req, err := c.args.Parse()
		if (err != nil) != c.bad || (!c.bad && req.Limit != c.limit) {
			t.Errorf("%+v: %+v, %v", c.args, req, err)
		}
	}
}
