package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/page"
)

// Sizes of the record listings' workload.
const (
	bigAllocations = 1_000_000
	bigAlerts      = 200_000
)

// records measures the allocation record and alert listings of a partner with
// a million records and 200,000 alerts: every filter, first page, 20 and 1,000
// pages in, and with totalCount.
func (e *env) records(ctx context.Context, key string, partnerID int64) ([]latencyRow, error) {
	db := e.serverDB()
	first, last, err := e.seedRecords(ctx, db, partnerID)
	if err != nil {
		return nil, err
	}
	customer := fmt.Sprint(e.bigFirstID + 77)
	mid := first.Add(last.Sub(first) / 2).UTC().Format(time.RFC3339Nano)
	end := last.UTC().Format(time.RFC3339Nano)
	const samples = 40
	var rows []latencyRow
	listings := []struct {
		name, field, filter string
		where               string // the same filter in SQL, for the deep cursors
		args                []any
		byTime              bool
	}{
		{"creditAllocations", "creditAllocations", "{}", "partner_id = ?", []any{partnerID}, true},
		{"creditAllocations, one customer", "creditAllocations", "{customerId: " + customer + "}", "partner_id = ? AND customer_id = ?", []any{partnerID, customer}, true},
		{"creditAllocations, kind WITHDRAW", "creditAllocations", "{kind: WITHDRAW}", "partner_id = ? AND kind = 'WITHDRAW'", []any{partnerID}, true},
		{"creditAllocations, time range", "creditAllocations", fmt.Sprintf("{from: %q, to: %q}", mid, end), "partner_id = ? AND created_at >= ? AND created_at < ?", []any{partnerID, first.Add(last.Sub(first) / 2), last}, true},
		{"alerts", "alerts", "{}", "partner_id = ?", []any{partnerID}, false},
		{"alerts, one customer", "alerts", "{customerId: " + customer + "}", "partner_id = ? AND customer_id = ?", []any{partnerID, customer}, false},
		{"alerts, threshold 90", "alerts", "{threshold: 90}", "partner_id = ? AND threshold = 90", []any{partnerID}, false},
		{"alerts, time range", "alerts", fmt.Sprintf("{from: %q, to: %q}", mid, end), "partner_id = ? AND created_at >= ? AND created_at < ?", []any{partnerID, first.Add(last.Sub(first) / 2), last}, false},
	}
	for _, l := range listings {
		for _, pages := range []int{1, 20, 1000} {
			var after *string
			if pages > 1 {
				c, ok, err := recordCursor(ctx, db, l.field, l.where, l.args, (pages-1)*50-1, l.byTime)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue // fewer records than that under this filter
				}
				after = &c
			}
			q := fmt.Sprintf(`query($a: String) { %s(filter: %s, first: 50, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } }`, l.field, l.filter)
			r, err := e.latency(ctx, key, q, map[string]any{"a": after}, samples)
			if err != nil {
				return nil, err
			}
			rows = append(rows, latencyRow{fmt.Sprintf("%s, page %d", l.name, pages), r.P50, r.P99, 20 * time.Millisecond})
		}
		q := fmt.Sprintf(`{ %s(filter: %s, first: 50) { totalCount nodes { id } } }`, l.field, l.filter)
		if l.byTime && strings.Contains(l.filter, "from") {
			// The first count of a range counts its whole past days one
			// by one and keeps them; later ones add the kept days up.
			first, err := e.latency(ctx, key, q, nil, 1)
			if err != nil {
				return nil, err
			}
			rows = append(rows, latencyRow{l.name + ", first request with totalCount (counts and keeps the days)", first.P50, first.P99, 0})
		}
		r, err := e.latency(ctx, key, q, nil, samples/4)
		if err != nil {
			return nil, err
		}
		rows = append(rows, latencyRow{l.name + ", first page with totalCount", r.P50, r.P99, 100 * time.Millisecond})
	}
	return rows, nil
}

// recordCursor returns the cursor of the row at offset of a listing, newest
// first, as the server writes it; false when there are not that many.
func recordCursor(ctx context.Context, db *sql.DB, table, where string, args []any, offset int, byTime bool) (string, bool, error) {
	if table == "creditAllocations" {
		table = "credit_allocations"
	}
	order := "id DESC"
	if byTime {
		order = "created_at DESC, id DESC"
	}
	var id uint
	var at any
	err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT id, created_at FROM %s WHERE %s ORDER BY %s LIMIT 1 OFFSET %d", table, where, order, offset), args...).Scan(&id, &at)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	c := page.Cursor{ID: id}
	if byTime {
		switch t := at.(type) {
		case time.Time:
			c.Value = t.UTC().Format(time.RFC3339Nano)
		case string:
			parsed, err := time.Parse("2006-01-02 15:04:05.999999999-07:00", t)
			if err != nil {
				return "", false, err
			}
			c.Value = parsed.UTC().Format(time.RFC3339Nano)
		}
	}
	return c.Encode(), true, nil
}

// seedRecords writes the allocation records and alerts of the partner's
// customers straight into the tables, spread over the last 30 days, and
// returns the first and last time written.
func (e *env) seedRecords(ctx context.Context, db *sql.DB, partnerID int64) (time.Time, time.Time, error) {
	start := time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Microsecond)
	step := 30 * 24 * time.Hour / bigAllocations
	err := insertRows(ctx, db, "credit_allocations (partner_id, customer_id, kind, amount, credit_before, credit_after, available_after, operator, request_hash, created_at)",
		bigAllocations, func(i int) []any {
			kind, amount := "ALLOCATE", int64(100)
			if i%3 == 0 {
				kind, amount = "WITHDRAW", -100
			}
			return []any{partnerID, e.bigFirstID + int64(rand.IntN(bigPartner)), kind, amount, 1000, 1000 + amount, 1000 + amount, "bench", "", start.Add(time.Duration(i) * step)}
		})
	if err != nil {
		return start, start, err
	}
	// Written past the service: its counters are set as migration 00004 does.
	if _, err := db.ExecContext(ctx, `UPDATE partners SET
		allocation_records = (SELECT COUNT(*) FROM credit_allocations a WHERE a.partner_id = partners.id),
		withdraw_records = (SELECT COUNT(*) FROM credit_allocations a WHERE a.partner_id = partners.id AND a.kind = 'WITHDRAW')
		WHERE id = ?`, partnerID); err != nil {
		return start, start, err
	}
	var lastID int64
	if err := db.QueryRowContext(ctx, "SELECT last_id FROM alert_sequences WHERE id = 1").Scan(&lastID); err != nil {
		return start, start, err
	}
	alertStep := 30 * 24 * time.Hour / bigAlerts
	thresholds := []int{75, 90, 100}
	err = insertRows(ctx, db, "alerts (id, partner_id, customer_id, threshold, usage_basis_points, used, credit, available, created_at)",
		bigAlerts, func(i int) []any {
			t := thresholds[i%3]
			return []any{lastID + int64(i) + 1, partnerID, e.bigFirstID + int64(rand.IntN(bigPartner)), t, t * 100, t * 10, 1000, 1000 - t*10, start.Add(time.Duration(i) * alertStep)}
		})
	if err != nil {
		return start, start, err
	}
	if _, err := db.ExecContext(ctx, "UPDATE alert_sequences SET last_id = ? WHERE id = 1", lastID+bigAlerts); err != nil {
		return start, start, err
	}
	// History, not news: nothing to deliver (its partner has no endpoints,
	// but reading 200,000 alerts to find that would run beside the listings).
	if _, err := db.ExecContext(ctx, "UPDATE alert_fanout SET last_id = ? WHERE id = 1 AND last_id = ?", lastID+bigAlerts, lastID); err != nil {
		return start, start, err
	}
	err = e.analyze(ctx, db, "credit_allocations, alerts")
	return start, start.Add(30 * 24 * time.Hour), err
}

// analyze gathers the statistics of tables just filled behind the server's
// back, as an operator would after an import. The server's SQLite
// connections read statistics when they open, and are replaced every
// database.SQLiteConnLifetime: wait for that.
func (e *env) analyze(ctx context.Context, db *sql.DB, tables string) error {
	if !e.sqlite {
		_, err := db.ExecContext(ctx, "ANALYZE TABLE "+tables)
		return err
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		return err
	}
	select {
	case <-time.After(database.SQLiteConnLifetime + time.Second):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// insertRows inserts n rows into table (with its column list) 1,000 at a time.
func insertRows(ctx context.Context, db *sql.DB, table string, n int, row func(i int) []any) error {
	for chunk := 0; chunk < n; chunk += 1000 {
		var b strings.Builder
		var args []any
		for i := chunk; i < min(n, chunk+1000); i++ {
			vals := row(i)
			if i > chunk {
				b.WriteString(", ")
			}
			b.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ") + ")")
			args = append(args, vals...)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" VALUES "+b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}
