package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cloudreseller/credit/internal/page"
)

// bigPartner is how many customers the dashboard workload's partner has.
const bigPartner = 100_000

// latencyRow is one line of the dashboard table.
type latencyRow struct {
	name     string
	p50, p99 time.Duration
	limit    time.Duration
}

// dashboard measures listing one partner's 100,000 customers as a dashboard
// does: every order and direction, first page, 20 and 1,000 pages in, a
// status filter, totalCount, and searches.
func (e *env) dashboard(ctx context.Context, key string, partnerID int64) ([]latencyRow, error) {
	db := e.serverDB()
	const fields = `nodes { id name credit available usagePercent status } pageInfo { hasNextPage endCursor }`
	samples := 100
	var rows []latencyRow
	orders := []struct{ field, column, sqlite string }{
		{"CREATED_AT", "created_at", "created_at"},
		{"NAME", "name", "name COLLATE NOCASE"},
		{"CREDIT", "credit", "credit"},
		{"AVAILABLE", "available", "available"},
		{"USAGE_PERCENT", "usage_basis_points", "usage_basis_points"},
	}
	for _, o := range orders {
		column := o.column
		if e.sqlite {
			column = o.sqlite
		}
		for _, dir := range []string{"ASC", "DESC"} {
			for _, pages := range []int{1, 20, 1000} {
				var after *string
				if pages > 1 {
					c, err := cursorAt(ctx, db, partnerID, column, o.column, dir, (pages-1)*50-1)
					if err != nil {
						return nil, err
					}
					after = &c
				}
				q := fmt.Sprintf(`query($a: String) { customers(first: 50, orderBy: {field: %s, direction: %s}, after: $a) { %s } }`, o.field, dir, fields)
				r, err := e.latency(ctx, key, q, map[string]any{"a": after}, samples)
				if err != nil {
					return nil, err
				}
				rows = append(rows, latencyRow{fmt.Sprintf("%s %s, page %d", o.field, dir, pages), r.P50, r.P99, 20 * time.Millisecond})
			}
		}
	}
	for _, c := range []struct {
		name, query string
		vars        map[string]any
		limit       time.Duration
	}{
		{"status SUSPENDED, first page", `{ customers(first: 50, filter: {status: SUSPENDED}) { ` + fields + ` } }`, nil, 20 * time.Millisecond},
		{"first page with totalCount", `{ customers(first: 50) { totalCount ` + fields + ` } }`, nil, 50 * time.Millisecond},
		{"search by exact id", `query($s: String) { customers(filter: {search: $s}) { ` + fields + ` } }`, map[string]any{"s": fmt.Sprint(e.bigFirstID + 4242)}, 10 * time.Millisecond},
		{"search by exact e-mail", `query($s: String) { customers(filter: {search: $s}) { ` + fields + ` } }`, map[string]any{"s": "big-4242@example.com"}, 10 * time.Millisecond},
		{"substring search", `query($s: String) { customers(filter: {search: $s}) { ` + fields + ` } }`, map[string]any{"s": "er 4242"}, 0},
	} {
		r, err := e.latency(ctx, key, c.query, c.vars, samples)
		if err != nil {
			return nil, err
		}
		rows = append(rows, latencyRow{c.name, r.P50, r.P99, c.limit})
	}
	// The best hand-written LIKE scan, for the substring search.
	like := "SELECT " + customerColumns + " FROM customers WHERE partner_id = ? AND (name LIKE ? OR email LIKE ? OR remark LIKE ?) ORDER BY created_at DESC, id DESC LIMIT 21"
	r := measure(ctx, 1, time.Duration(samples)*50*time.Millisecond, func(ctx context.Context, _, _ int) (int, error) {
		rs, err := db.QueryContext(ctx, like, partnerID, "%er 4242%", "%er 4242%", "%er 4242%")
		if err != nil {
			return 0, err
		}
		_, err = scanCustomers(rs)
		return 1, err
	})
	rows = append(rows, latencyRow{"substring search, by hand in SQL", r.P50, r.P99, 0})
	return rows, nil
}

// latency sends the same operation samples times, one at a time.
func (e *env) latency(ctx context.Context, key, query string, vars map[string]any, samples int) (Result, error) {
	var times []time.Duration
	for range samples {
		start := time.Now()
		if err := e.gql(ctx, key, query, vars, nil); err != nil {
			return Result{}, fmt.Errorf("%s: %w", query, err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return Result{Ops: samples, P50: times[len(times)/2], P99: times[len(times)*99/100]}, nil
}

// cursorAt returns the cursor of the row at offset in the listing's order,
// as the server writes it, to start a page deep in the listing.
func cursorAt(ctx context.Context, db *sql.DB, partnerID int64, column, plain, dir string, offset int) (string, error) {
	q := fmt.Sprintf("SELECT id, %s FROM customers WHERE partner_id = ? ORDER BY %s %s, id %s LIMIT 1 OFFSET %d", plain, column, dir, dir, offset)
	var id uint
	var value any
	if err := db.QueryRowContext(ctx, q, partnerID).Scan(&id, &value); err != nil {
		return "", err
	}
	var v string
	switch x := value.(type) {
	case time.Time:
		v = x.UTC().Format(time.RFC3339Nano)
	case []byte:
		v = string(x)
	default:
		v = fmt.Sprint(x)
	}
	if t, err := time.Parse("2006-01-02 15:04:05.999999999-07:00", v); err == nil { // SQLite's text times
		v = t.UTC().Format(time.RFC3339Nano)
	}
	return page.Cursor{Value: v, ID: id}.Encode(), nil
}

// seedBig makes a partner through the API and gives it bigPartner customers
// straight in the tables (through the API it would take minutes).
func (e *env) seedBig(ctx context.Context) (key string, partnerID int64, err error) {
	var out struct{ CreatePartner struct{ ID string } }
	if err := e.gql(ctx, e.admin, `mutation { createPartner(input: {name: "Big", creditLine: "1000000000"}) { id } }`, nil, &out); err != nil {
		return "", 0, err
	}
	if key, err = e.createKey(ctx, "PARTNER", out.CreatePartner.ID); err != nil {
		return "", 0, err
	}
	fmt.Sscan(out.CreatePartner.ID, &partnerID)
	db := e.serverDB()
	statuses := []string{"ACTIVE", "ACTIVE", "ACTIVE", "SUSPENDED", "PURCHASES_BLOCKED"}
	start := time.Now().UTC().Add(-time.Hour)
	var total int64
	for chunk := 0; chunk < bigPartner; chunk += 1000 {
		var b strings.Builder
		args := make([]any, 0, 1000*10)
		for i := chunk; i < chunk+1000; i++ {
			if i > chunk {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			credit := int64(rand.IntN(1_000_000))
			used := int64(rand.IntN(int(credit) + 1))
			status := statuses[i%len(statuses)]
			avail := credit - used
			if status != "ACTIVE" {
				used, avail = credit, 0
			}
			total += credit
			bp := int64(0)
			if credit > 0 {
				bp = used * 10000 / credit
			}
			args = append(args, partnerID, fmt.Sprintf("Customer %d", i), fmt.Sprintf("big-%d@example.com", i),
				credit, used, avail, bp, status, start.Add(time.Duration(i)*time.Millisecond), start)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO customers (partner_id, name, email, credit, used, available, usage_basis_points, status, created_at, updated_at) VALUES "+b.String(), args...); err != nil {
			return "", 0, err
		}
	}
	if _, err := db.ExecContext(ctx, "UPDATE partners SET allocated = ? WHERE id = ?", total, partnerID); err != nil {
		return "", 0, err
	}
	if err := db.QueryRowContext(ctx, "SELECT MIN(id) FROM customers WHERE partner_id = ?", partnerID).Scan(&e.bigFirstID); err != nil {
		return "", 0, err
	}
	return key, partnerID, e.analyze(ctx, db, "customers")
}

func printLatencies(w io.Writer, title string, rows []latencyRow) {
	fmt.Fprintf(w, "\n%s\n\n| listing | p50 | p99 | target |\n|---|---|---|---|\n", title)
	for _, r := range rows {
		target := "—"
		if r.limit > 0 {
			verdict := "met"
			if r.p99 > r.limit {
				verdict = "NOT met"
			}
			target = fmt.Sprintf("p99 ≤ %v %s", r.limit, verdict)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, ms(r.p50), ms(r.p99), target)
	}
}
