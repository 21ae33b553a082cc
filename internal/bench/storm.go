package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
)

// stormEndpoints is how many endpoints the storm section registers: 25 for
// each partner, the delivery section's mix.
const stormEndpoints = 100

// storm is what the storm section saw: the writes with endpoints and
// without, and, over the runs with endpoints, the deliveries queued and
// attempted a second, and what was left when the writes stopped: deliveries
// pending, alerts not yet numbered, alerts numbered whose deliveries are not
// yet queued; and the alerts not yet numbered after the runs without.
type storm struct {
	with, none                Result
	queued, attempted         float64 // a second
	pending, outbox, unqueued int64   // medians over the runs
	noneOutbox                int64   // alerts not yet numbered after the runs with none
}

// deliveryStorm measures an alert storm: 32 clients each swinging a customer
// of its own across 75 % (every change raises an alert), with stormEndpoints
// endpoints against the same with none, in alternate runs. Every alert goes to
// each of its partner's 25 endpoints: far more deliveries than a process can
// attempt; what is left queued shows how far behind delivery falls.
func (e *env) deliveryStorm(ctx context.Context, cfg Config) (storm, error) {
	var s storm
	rc, _, err := e.alertSourceAndReceiver(ctx)
	if err != nil {
		return s, err
	}
	defer rc.srv.Close()
	hot, err := e.customersAt(ctx, 32, "740.00")
	if err != nil {
		return s, err
	}
	work := func(ctx context.Context, client, i int) (int, error) { return 1, e.swingCredit(ctx, hot[client], i) }
	var with, none []Result
	var pendings, outboxes, unqueueds, noneOutboxes []int64
	var queued, attempted, elapsed float64
	for range cfg.Rounds {
		none = append(none, measure(ctx, len(hot), cfg.Duration, work))
		var waiting int64
		if err := e.serverDB().QueryRowContext(ctx, "SELECT COUNT(*) FROM raised_alerts").Scan(&waiting); err != nil {
			return s, err
		}
		noneOutboxes = append(noneOutboxes, waiting)
		if err := e.outboxEmpty(ctx, time.Minute); err != nil {
			return s, err
		}
		// Each run starts at 74 %, its first change a withdrawal.
		if err := e.resetCredit(ctx, hot); err != nil {
			return s, err
		}
		ids, err := e.registerEndpoints(ctx, rc.url, stormEndpoints)
		if err != nil {
			return s, err
		}
		q0, a0, err := e.deliveryCounts(ctx)
		if err != nil {
			return s, err
		}
		r := measure(ctx, len(hot), cfg.Duration, work)
		with = append(with, r)
		q1, a1, err := e.deliveryCounts(ctx)
		if err != nil {
			return s, err
		}
		queued, attempted, elapsed = queued+float64(q1-q0), attempted+float64(a1-a0), elapsed+r.Elapsed.Seconds()
		var pending, outbox, unqueued int64
		if err := e.serverDB().QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM alert_deliveries WHERE status = 'PENDING'), (SELECT COUNT(*) FROM raised_alerts),"+
			" ("+delivery.UnqueuedQuery+")").Scan(&pending, &outbox, &unqueued); err != nil {
			return s, err
		}
		pendings, outboxes, unqueueds = append(pendings, pending), append(outboxes, outbox), append(unqueueds, unqueued)
		// Deleting an endpoint drops its pending deliveries: the next run
		// starts with no backlog.
		if err := e.deleteEndpoints(ctx, ids); err != nil {
			return s, err
		}
		if err := e.resetCredit(ctx, hot); err != nil {
			return s, err
		}
		if err := e.outboxEmpty(ctx, time.Minute); err != nil {
			return s, err
		}
	}
	s.with, s.none = median(with), median(none)
	s.queued, s.attempted = queued/elapsed, attempted/elapsed
	s.pending, s.outbox, s.unqueued, s.noneOutbox = middle(pendings), middle(outboxes), middle(unqueueds), middle(noneOutboxes)
	return s, ctx.Err()
}

// outboxEmpty waits until every alert raised is numbered: the next run
// starts with none left to number.
func (e *env) outboxEmpty(ctx context.Context, within time.Duration) error {
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		var n int64
		if err := e.serverDB().QueryRowContext(ctx, "SELECT COUNT(*) FROM raised_alerts").Scan(&n); err != nil || n == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d alerts still wait to be numbered after %v", n, within)
		}
	}
}

// deliveryCounts reads how many deliveries were ever queued (the newest id)
// and attempted (attempt rows).
func (e *env) deliveryCounts(ctx context.Context) (queued, attempted int64, err error) {
	err = e.serverDB().QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0), (SELECT COUNT(*) FROM alert_delivery_attempts) FROM alert_deliveries").Scan(&queued, &attempted)
	return queued, attempted, err
}

// middle is the median of xs.
func middle(xs []int64) int64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// printStorm prints the storm section.
func printStorm(w io.Writer, s storm) {
	printColumns(w, fmt.Sprintf("An alert storm: every change raises an alert, %d endpoints (25 a partner, half failing or slow) vs none, alternate runs", stormEndpoints),
		"with endpoints", "none", []row{{name: "`setCredit` ±14.00, 32 clients, each change crossing 75 % or recovering", unit: "changes", server: s.with, raw: s.none}})
	fmt.Fprintf(w, "\nDuring the runs with endpoints: %.0f deliveries queued a second, %.0f attempted a second; when the writes stopped (medians), %d deliveries pending (neither delivered nor given up), %d alerts not yet numbered (nor sent to subscriptions), %d numbered whose deliveries were not yet queued. After the runs with none, %d alerts not yet numbered.\n",
		s.queued, s.attempted, s.pending, s.outbox, s.unqueued, s.noneOutbox)
}
