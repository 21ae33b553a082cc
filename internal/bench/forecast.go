package bench

import (
	"context"
	"fmt"
	"time"
)

// forecastEvents is how much usage the forecast workload's customer has in
// its window (a week): an event a second, for a week, is 604,800.
const forecastEvents = 500_000

// forecast measures reading the depletion forecast of a customer with
// forecastEvents usage events within its window, as a dashboard does, and,
// the baseline, summing those events by hand in SQL, which is how the
// forecast read its window before usage was kept by hour.
func (e *env) forecast(ctx context.Context, key string, partnerID int64) ([]latencyRow, error) {
	db := e.serverDB()
	customer := e.bigFirstID + 99
	now := time.Now().UTC().Truncate(time.Microsecond)
	week := 7 * 24 * time.Hour
	step := week / forecastEvents
	at := func(i int) time.Time { return now.Add(-week + time.Minute + time.Duration(i)*step) }
	err := insertRows(ctx, db, "usage_events (event_id, partner_id, customer_id, amount, occurred_at, created_at)", forecastEvents, func(i int) []any {
		return []any{fmt.Sprintf("bench-forecast-%d", i), partnerID, customer, 1, at(i), now}
	})
	if err != nil {
		return nil, err
	}
	// The usage by hour the server keeps beside the events.
	hours := map[int64]int64{}
	var order []int64
	for i := range forecastEvents {
		h := usageHour(at(i))
		if _, ok := hours[h]; !ok {
			order = append(order, h)
		}
		hours[h]++
	}
	if err := insertRows(ctx, db, "usage_hours (customer_id, hour, amount)", len(order), func(i int) []any {
		return []any{customer, order[i], hours[order[i]]}
	}); err != nil {
		return nil, err
	}
	if err := e.analyze(ctx, db, "usage_events, usage_hours"); err != nil {
		return nil, err
	}
	const samples = 40
	q := `query($c: ID!) { customer(id: $c) { forecast { burnRatePerDay daysLeft basedOnHours } } }`
	r, err := e.latency(ctx, key, q, map[string]any{"c": fmt.Sprint(customer)}, samples)
	if err != nil {
		return nil, err
	}
	rows := []latencyRow{{fmt.Sprintf("customer(id) { forecast }, %d usage events in its week", forecastEvents), r.P50, r.P99, 20 * time.Millisecond}}
	sum := "SELECT SUM(amount) FROM usage_events WHERE customer_id = ? AND occurred_at >= ? AND occurred_at <= ?"
	raw := measure(ctx, 1, time.Duration(samples/4)*time.Second, func(ctx context.Context, _, _ int) (int, error) {
		var total int64
		t := time.Now().UTC()
		return 1, db.QueryRowContext(ctx, sum, customer, t.Add(-week), t).Scan(&total)
	})
	rows = append(rows, latencyRow{"its week's usage summed over the events, by hand in SQL (the forecast's read before usage was kept by hour)", raw.P50, raw.P99, 0})
	return rows, nil
}
