package httpapi_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/reconcile"
	"github.com/cloudreseller/credit/internal/testenv"
)

type listed struct {
	ID, Name, Credit, Available, CreatedAt string
	UsagePercent                           float64
}

const customersPage = `query($order: CustomerOrder, $filter: CustomerFilter, $first: Int, $after: String) {
	customers(orderBy: $order, filter: $filter, first: $first, after: $after) {
		totalCount
		edges { cursor node { id name credit available usagePercent createdAt } }
		nodes { id }
		pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

type customersResult struct {
	Customers struct {
		TotalCount int
		Edges      []struct {
			Cursor string
			Node   listed
		}
		Nodes    []struct{ ID string }
		PageInfo struct {
			HasNextPage, HasPreviousPage bool
			StartCursor, EndCursor       *string
		}
	}
}

// walk reads every page of a customer listing and returns the ids in order.
func walk(t *testing.T, s *testenv.Server, key string, vars map[string]any, size int) []listed {
	t.Helper()
	var all []listed
	var after any
	for pages := 0; ; pages++ {
		v := map[string]any{"first": size, "after": after}
		for k, x := range vars {
			v[k] = x
		}
		var out customersResult
		s.Must(t, key, customersPage, v, &out)
		c := out.Customers
		if len(c.Edges) != len(c.Nodes) || len(c.Edges) > size {
			t.Fatalf("page of %d edges and %d nodes (first %d)", len(c.Edges), len(c.Nodes), size)
		}
		for i, e := range c.Edges {
			if c.Nodes[i].ID != e.Node.ID {
				t.Fatal("edges and nodes differ")
			}
			all = append(all, e.Node)
		}
		// Relay's PageInfo: pages after a cursor have items before them; the
		// start cursor is the first edge's (null on an empty page).
		if c.PageInfo.HasPreviousPage != (after != nil) {
			t.Fatalf("page %d: hasPreviousPage %v", pages, c.PageInfo.HasPreviousPage)
		}
		if len(c.Edges) == 0 && c.PageInfo.StartCursor != nil ||
			len(c.Edges) > 0 && (c.PageInfo.StartCursor == nil || *c.PageInfo.StartCursor != c.Edges[0].Cursor) {
			t.Fatalf("page %d: startCursor %v is not the first edge's cursor", pages, c.PageInfo.StartCursor)
		}
		if !c.PageInfo.HasNextPage {
			if len(all) != c.TotalCount {
				t.Fatalf("walked %d customers, totalCount %d", len(all), c.TotalCount)
			}
			return all
		}
		if c.PageInfo.EndCursor == nil || *c.PageInfo.EndCursor != c.Edges[len(c.Edges)-1].Cursor {
			t.Fatal("endCursor is not the last edge's cursor")
		}
		after = *c.PageInfo.EndCursor
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
	}
}

func cents(t *testing.T, d string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.Replace(d, ".", "", 1), 10, 64)
	if err != nil {
		t.Fatalf("bad Decimal %q", d)
	}
	return n
}

func TestCustomerListing(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "100000")
		names := []string{"Delta", "alpha", "Charlie", "Bravo", "Echo", "Foxtrot", "Golf"}
		credits := []string{"50", "700", "50", "0", "12.34", "700", "3"}
		for i, n := range names {
			id := s.CreateCustomer(t, key, n, false)
			if credits[i] != "0" {
				s.SetCredit(t, key, id, credits[i])
			}
		}
		all := walk(t, s, key, nil, 100)
		if len(all) != len(names) {
			t.Fatalf("%d customers", len(all))
		}
		idNum := func(c listed) int64 { n, _ := strconv.ParseInt(c.ID, 10, 64); return n }

		type order struct {
			field string
			less  func(a, b listed) int
		}
		orders := []order{
			{"CREATED_AT", func(a, b listed) int {
				ta, _ := time.Parse(time.RFC3339Nano, a.CreatedAt)
				tb, _ := time.Parse(time.RFC3339Nano, b.CreatedAt)
				return ta.Compare(tb)
			}},
			{"NAME", func(a, b listed) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) }},
			{"CREDIT", func(a, b listed) int { return int(cents(t, a.Credit) - cents(t, b.Credit)) }},
			{"AVAILABLE", func(a, b listed) int { return int(cents(t, a.Available) - cents(t, b.Available)) }},
			{"USAGE_PERCENT", func(a, b listed) int { return int(a.UsagePercent*100 - b.UsagePercent*100) }},
		}
		for _, o := range orders {
			for _, dir := range []string{"ASC", "DESC"} {
				want := slices.Clone(all)
				slices.SortFunc(want, func(a, b listed) int {
					c := o.less(a, b)
					if c == 0 {
						c = int(idNum(a) - idNum(b))
					}
					if dir == "DESC" {
						c = -c
					}
					return c
				})
				got := walk(t, s, key, map[string]any{"order": map[string]any{"field": o.field, "direction": dir}}, 2)
				if fmt.Sprint(ids(got)) != fmt.Sprint(ids(want)) {
					t.Errorf("%s %s: got %v, want %v", o.field, dir, ids(got), ids(want))
				}
			}
		}
		// The default is newest first, the later of two equal instants first.
		if got, want := ids(walk(t, s, key, nil, 3)), ids(walk(t, s, key, map[string]any{"order": map[string]any{"field": "CREATED_AT", "direction": "DESC"}}, 3)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("default order %v, want newest first %v", got, want)
		}
		if all[0].Name != "Golf" {
			t.Fatalf("newest first starts with %s", all[0].Name)
		}
		var def customersResult
		s.Must(t, key, customersPage, nil, &def)
		if len(def.Customers.Edges) != len(names) || def.Customers.PageInfo.HasNextPage {
			t.Fatal("default page size should hold all 7")
		}
	})
}

func ids(cs []listed) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestCustomerFilters(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")
		make := func(name, email, remark string) string {
			var out struct{ CreateCustomer struct{ ID string } }
			s.Must(t, key, `mutation($in: CreateCustomerInput!) { createCustomer(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"name": name, "email": email, "remark": remark}}, &out)
			return out.CreateCustomer.ID
		}
		pct := make("100% Cloud", "a@pct.example", "")
		under := make("Under_score", "b@example.com", "")
		plain := make("Plain", "c@example.com", "pays 50% upfront")
		other := make("Other", "d@other.example", "")

		search := func(term string) []string {
			return ids(walk(t, s, key, map[string]any{"filter": map[string]any{"search": term}}, 10))
		}
		cases := []struct {
			term string
			want []string
		}{
			{"%", []string{plain, pct}},             // literal percent: name or remark
			{"_", []string{under}},                  // literal underscore
			{"cloud", []string{pct}},                // case-insensitive substring of name
			{"example.com", []string{plain, under}}, // email
			{"upfront", []string{plain}},            // remark
			{other, []string{other}},                // exact id
			{"b@example.com", []string{under}},      // exact e-mail (an index look-up)
			{"B@Example.COM", []string{under}},      // e-mails compare without case
			{"@example.com", []string{}},            // an e-mail is found whole, not in part
			{"zzz", []string{}},
		}
		for _, c := range cases {
			if got := search(c.term); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("search %q = %v, want %v", c.term, got, c.want)
			}
		}
		got := ids(walk(t, s, key, map[string]any{"filter": map[string]any{"ids": []string{pct, other, "424242"}}}, 10))
		if fmt.Sprint(got) != fmt.Sprint([]string{other, pct}) {
			t.Fatalf("ids filter = %v", got)
		}
		many := make100()
		s.Fails(t, "BAD_USER_INPUT", key, customersPage, map[string]any{"filter": map[string]any{"ids": many}})
		s.Fails(t, "BAD_USER_INPUT", key, `mutation { createCustomer(input: {name: "x", email: "not an address"}) { id } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", key, `mutation { createCustomer(input: {name: "x", email: "ops@[10.0.0.1]"}) { id } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", key, `mutation { createCustomer(input: {name: "  "}) { id } }`, nil)
		// A name heads the alert e-mails about its customer: one line.
		s.Fails(t, "BAD_USER_INPUT", key, `mutation { createCustomer(input: {name: "Evil\r\nBcc: x@example.com"}) { id } }`, nil)
		s.Fails(t, "BAD_USER_INPUT", key, `mutation($id: ID!) { updateCustomer(input: {customerId: $id, name: "a\u202Eb"}) { id } }`, map[string]any{"id": pct})
	})
}

func make100() []string {
	out := make([]string, 101)
	for i := range out {
		out[i] = strconv.Itoa(i + 1)
	}
	return out
}

func TestPagingArguments(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")
		s.CreateCustomer(t, key, "A", false)
		for _, first := range []int{0, -1, 101} {
			s.Fails(t, "BAD_USER_INPUT", key, customersPage, map[string]any{"first": first})
			s.Fails(t, "BAD_USER_INPUT", key, `query($f: Int) { creditAllocations(first: $f) { totalCount } }`, map[string]any{"f": first})
		}
		for _, cursor := range []string{"garbage", "eyJ4Ijo1fQ", ""} {
			s.Fails(t, "BAD_USER_INPUT", key, customersPage, map[string]any{"after": cursor})
			s.Fails(t, "BAD_USER_INPUT", key, `query($a: String) { creditAllocations(after: $a) { totalCount } }`, map[string]any{"a": cursor})
		}
		// A cursor of one ordering is refused by another whose values differ in kind.
		var out customersResult
		s.Must(t, key, customersPage, map[string]any{"first": 1, "order": map[string]any{"field": "NAME", "direction": "ASC"}}, &out)
		s.Fails(t, "BAD_USER_INPUT", key, customersPage, map[string]any{"after": out.Customers.Edges[0].Cursor, "order": map[string]any{"field": "CREDIT", "direction": "ASC"}})
	})
}

func TestAllocationListing(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, key := s.CreatePartner(t, "Reseller", "1000")
		a := s.CreateCustomer(t, key, "A", false)
		b := s.CreateCustomer(t, key, "B", false)
		s.SetCredit(t, key, a, "10")
		s.SetCredit(t, key, b, "20")
		s.SetCredit(t, key, a, "-3")
		mid := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		s.SetCredit(t, key, a, "30")
		s.SetCredit(t, key, b, "-20")

		type rec struct {
			Amount, CreatedAt string
			Customer          struct{ ID string }
		}
		list := func(filter map[string]any) []rec {
			var all []rec
			var after any
			for {
				var out struct {
					CreditAllocations struct {
						TotalCount int
						Nodes      []rec
						PageInfo   struct {
							HasNextPage bool
							EndCursor   *string
						}
					}
				}
				s.Must(t, key, `query($f: AllocationFilter, $a: String) { creditAllocations(filter: $f, first: 2, after: $a) {
					totalCount nodes { amount createdAt customer { id } } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"f": filter, "a": after}, &out)
				all = append(all, out.CreditAllocations.Nodes...)
				if !out.CreditAllocations.PageInfo.HasNextPage {
					if len(all) != out.CreditAllocations.TotalCount {
						t.Fatalf("walked %d, totalCount %d", len(all), out.CreditAllocations.TotalCount)
					}
					return all
				}
				after = *out.CreditAllocations.PageInfo.EndCursor
			}
		}
		amounts := func(rs []rec) string {
			var out []string
			for _, r := range rs {
				out = append(out, r.Amount)
			}
			return strings.Join(out, " ")
		}
		cases := []struct {
			filter map[string]any
			want   string
		}{
			{nil, "-20.00 30.00 -3.00 20.00 10.00"},
			{map[string]any{"customerId": a}, "30.00 -3.00 10.00"},
			{map[string]any{"kind": "WITHDRAW"}, "-20.00 -3.00"},
			{map[string]any{"kind": "ALLOCATE", "customerId": b}, "20.00"},
			{map[string]any{"from": mid.Format(time.RFC3339Nano)}, "-20.00 30.00"},
			{map[string]any{"to": mid.Format(time.RFC3339Nano)}, "-3.00 20.00 10.00"},
		}
		for _, c := range cases {
			if got := amounts(list(c.filter)); got != c.want {
				t.Errorf("filter %v: %s, want %s", c.filter, got, c.want)
			}
		}
		s.Fails(t, "BAD_USER_INPUT", key, `{ creditAllocations(filter: {from: "yesterday"}) { totalCount } }`, nil)
	})
}

// A partner's records over a time range are counted by whole past days,
// each counted once and kept, plus the rows at the range's ends: the
// totalCount is exact for any range and kind, also once the days are kept,
// and a day that is not over (or over for less than a day) is always counted
// by its rows.
func TestRecordsOverTimeRangesAreCountedExactly(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s := testenv.NewServer(t, db)
		_, partner := s.CreatePartner(t, "Reseller", "100000")
		cust := s.CreateCustomer(t, partner, "C", false)
		for i := range 40 {
			amount := "10"
			if i%3 == 2 {
				amount = "-5"
			}
			s.SetCredit(t, partner, cust, amount)
		}
		// Spread the records over the last 10 days, a few hours apart, as if
		// made then (the partner too, so that an open range starts before).
		now := time.Now().UTC()
		if err := db.Exec("UPDATE partners SET created_at = ?", now.Add(-30*24*time.Hour)).Error; err != nil {
			t.Fatal(err)
		}
		var ids []uint
		if err := db.Table("credit_allocations").Order("id").Pluck("id", &ids).Error; err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			at := now.Add(-10*24*time.Hour + time.Duration(i)*6*time.Hour + 7*time.Minute)
			if err := db.Exec("UPDATE credit_allocations SET created_at = ? WHERE id = ?", at, id).Error; err != nil {
				t.Fatal(err)
			}
		}
		want := func(kind string, from, to *time.Time) int64 {
			q := db.Table("credit_allocations")
			if kind != "" {
				q = q.Where("kind = ?", kind)
			}
			if from != nil {
				q = q.Where("created_at >= ?", *from)
			}
			if to != nil {
				q = q.Where("created_at < ?", *to)
			}
			var n int64
			if err := q.Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
		ranges := []struct{ from, to *time.Time }{
			{at(-9*24*time.Hour - 5*time.Hour), at(-2 * time.Hour)},
			{at(-8 * 24 * time.Hour), nil},
			{nil, at(-3*24*time.Hour + 90*time.Minute)},
			{at(-6 * 24 * time.Hour), at(-5*24*time.Hour + time.Hour)},
			{at(-time.Hour), nil},
		}
		for round := range 2 { // counting the days, then from the kept counts
			for _, r := range ranges {
				for _, kind := range []string{"", "WITHDRAW", "ALLOCATE"} {
					filter := map[string]any{}
					if kind != "" {
						filter["kind"] = kind
					}
					if r.from != nil {
						filter["from"] = r.from.Format(time.RFC3339Nano)
					}
					if r.to != nil {
						filter["to"] = r.to.Format(time.RFC3339Nano)
					}
					var out struct{ CreditAllocations struct{ TotalCount int64 } }
					s.Must(t, partner, `query($f: AllocationFilter) { creditAllocations(filter: $f, first: 1) { totalCount } }`, map[string]any{"f": filter}, &out)
					if w := want(kind, r.from, r.to); out.CreditAllocations.TotalCount != w {
						t.Fatalf("round %d, %v to %v, kind %q: totalCount %d, want %d", round, r.from, r.to, kind, out.CreditAllocations.TotalCount, w)
					}
				}
			}
		}
		var kept int64
		if err := db.Table("allocation_day_counts").Where("day >= ?", now.Add(-closedDay)).Count(&kept).Error; err != nil || kept != 0 {
			t.Fatalf("%d days kept that ended less than a day ago (%v)", kept, err)
		}
		if err := db.Table("allocation_day_counts").Count(&kept).Error; err != nil || kept == 0 {
			t.Fatalf("no day counts kept (%v)", err)
		}
		// What is kept is what a recount finds.
		report, err := reconcile.Run(context.Background(), db)
		if err != nil || !report.Clean() {
			t.Fatalf("reconcile: %+v (%v)", report, err)
		}
	})
}

// closedDay: a day's count is kept once the day ended more than a day ago.
const closedDay = 48 * time.Hour
