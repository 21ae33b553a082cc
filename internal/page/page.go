// Package page implements cursor pagination: page sizes, opaque cursors, and
// the keyset conditions that continue a listing after a cursor.
//
// A cursor records the sort value and id of the last row a client saw, so a
// listing continues exactly after it even while rows are added: no offsets.
package page

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/cloudreseller/credit/internal/errs"
)

// Default and Max bound the number of items on one page.
const (
	Default = 20
	Max     = 100
)

// Args are a client's paging arguments.
type Args struct {
	First *int
	After *string
	// Count asks for the total count (clients that do not select totalCount
	// do not pay for counting).
	Count bool
}

// Cursor is the position after which a page starts: the sort value and id of a row.
type Cursor struct {
	Value string `json:"v"`
	ID    uint   `json:"i"`
}

// Request is validated paging: how many items and after which cursor (nil: from
// the start).
type Request struct {
	Limit int
	After *Cursor
	Count bool
}

// Parse validates paging arguments.
func (a Args) Parse() (Request, error) {
	r := Request{Limit: Default, Count: a.Count}
	if a.First != nil {
		if *a.First < 1 || *a.First > Max {
			return r, errs.E(errs.BadUserInput, "first must be between 1 and %d", Max)
		}
		r.Limit = *a.First
	}
	if a.After != nil {
		c, err := decode(*a.After)
		if err != nil {
			return r, errs.E(errs.BadUserInput, "after is not a cursor this listing gave out")
		}
		r.After = &c
	}
	return r, nil
}

// Encode returns the opaque text of a cursor.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decode(s string) (Cursor, error) {
	var c Cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	if c.ID == 0 {
		return c, errs.E(errs.BadUserInput, "bad cursor")
	}
	return c, nil
}

// Result is one page of items with the cursor of each.
type Result[T any] struct {
	Items       []T
	Cursors     []string
	HasNextPage bool
	// HasPreviousPage: the page was asked for after a cursor, so items come
	// before it (Relay lets a forward-only listing answer this way, without
	// a query for what lies behind).
	HasPreviousPage bool
	TotalCount      int64
}

// StartCursor is the cursor of the first item, or nil on an empty page.
func (r Result[T]) StartCursor() *string {
	if len(r.Cursors) == 0 {
		return nil
	}
	return &r.Cursors[0]
}

// EndCursor is the cursor of the last item, or nil on an empty page.
func (r Result[T]) EndCursor() *string {
	if len(r.Cursors) == 0 {
		return nil
	}
	return &r.Cursors[len(r.Cursors)-1]
}

// Build makes a page from up to Limit+1 rows fetched in order: the extra row only
// tells that there is a next page.
func Build[T any](rows []T, req Request, total int64, cursor func(T) Cursor) Result[T] {
	r := Result[T]{TotalCount: total, HasPreviousPage: req.After != nil}
	if len(rows) > req.Limit {
		rows = rows[:req.Limit]
		r.HasNextPage = true
	}
	r.Items = rows
	r.Cursors = make([]string, len(rows))
	for i, row := range rows {
		r.Cursors[i] = cursor(row).Encode()
	}
	return r
}

// AfterID is the id of the cursor row, or 0 from the start.
func (r Request) AfterID() uint {
	if r.After == nil {
		return 0
	}
	return r.After.ID
}

// GroupBy splits rows fetched for many groups at once by group, keeping their
// order.
func GroupBy[T any](rows []T, of func(T) uint) map[uint][]T {
	out := map[uint][]T{}
	for _, r := range rows {
		out[of(r)] = append(out[of(r)], r)
	}
	return out
}
