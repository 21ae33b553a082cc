// Package bench measures the server against what the database itself can do:
// each workload runs through a real server process (HTTP and GraphQL, many
// concurrent clients) and then as the same database work in plain
// database/sql on a scratch schema of the same store, interleaved and
// repeated, and the table says how close the server comes (ratio to raw).
//
// Run it with `go run . bench` (see README.md).
package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config says what to run.
type Config struct {
	// MySQLDSN is a go-sql-driver DSN of the server (no database): the run
	// creates databases credit_bench_… and credit_bench_raw_… there and drops
	// them at the end.
	MySQLDSN string
	// SQLiteDir, when set instead, runs on SQLite files in that directory.
	SQLiteDir string
	// Server is the server binary to start (the running executable).
	Server string
	// Duration of one measurement; Rounds of server/raw pairs (median taken).
	Duration time.Duration
	Rounds   int
	// Short runs the 1,000-customer workloads only, briefly: for CI.
	Short bool
	// Only, when set, runs the workloads whose name contains it.
	Only string
	// ProfileDir, when set, receives the server's CPU profile of each
	// workload's first server measurement: profile before optimising.
	ProfileDir string
	// AlertRate is the delivery sections' alert-raising changes a second
	// (DefaultAlertRate when 0).
	AlertRate int
	Out       io.Writer
}

// Result is one measurement.
type Result struct {
	Ops      int
	Elapsed  time.Duration
	P50, P99 time.Duration
	Errors   int
}

// Rate is operations (or events) per second.
func (r Result) Rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// measure runs op from clients goroutines for d and collects latencies. op
// returns how many units it did (events for a batch, 1 otherwise).
func measure(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, client, i int) (int, error)) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		units     atomic.Int64
		errors    atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; ctx.Err() == nil; i++ {
				t := time.Now()
				n, err := op(ctx, c, i)
				if ctx.Err() != nil {
					break // cut by the end of the measurement, not a result
				}
				if err != nil {
					errors.Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
				units.Add(int64(n))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := Result{Ops: int(units.Load()), Elapsed: time.Since(start), Errors: int(errors.Load())}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		r.P50 = latencies[len(latencies)/2]
		r.P99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
	}
	return r
}

// median returns the result of median rate.
func median(rs []Result) Result {
	rs = slices.Clone(rs) // callers keep their order
	sort.Slice(rs, func(i, j int) bool { return rs[i].Rate() < rs[j].Rate() })
	return rs[len(rs)/2]
}

// row is one line of the table.
type row struct {
	name, unit   string
	server, raw  Result
	target       float64 // minimum ratio, 0: none
	latencyLimit time.Duration
	// paired, when set, are the ratios of runs measured back to back (each
	// against its own baseline): the ratio shown is their median, with their
	// range. Runs far apart differ by more than what is measured (the store
	// grows, the machine wanders), which a ratio of medians mixes in.
	paired []float64
}

// ratio is the row's ratio: the median of its paired ratios, or of its
// medians.
func (r row) ratio() float64 {
	if len(r.paired) == 0 {
		return r.server.Rate() / r.raw.Rate()
	}
	p := slices.Clone(r.paired)
	slices.Sort(p)
	return p[len(p)/2]
}

// spread says the range of the paired ratios, if any.
func (r row) spread() string {
	if len(r.paired) < 2 {
		return ""
	}
	return fmt.Sprintf(" (%.2f–%.2f, %d pairs)", slices.Min(r.paired), slices.Max(r.paired), len(r.paired))
}

func printTable(w io.Writer, title string, rows []row) {
	printColumns(w, title, "server", "raw", rows)
}

// printColumns prints rows comparing what a and b name (ratio a/b).
func printColumns(w io.Writer, title, a, b string, rows []row) {
	fmt.Fprintf(w, "\n%s\n\n", title)
	fmt.Fprintf(w, "| workload | %[1]s | %[1]s p50 / p99 | %[2]s | %[2]s p50 / p99 | ratio | target |\n", a, b)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := r.ratio()
		target := "—"
		if r.target > 0 {
			verdict := "met"
			if ratio < r.target {
				verdict = "NOT met"
			}
			target = fmt.Sprintf("≥ %.2f %s", r.target, verdict)
		}
		errs := ""
		if r.server.Errors+r.raw.Errors > 0 {
			errs = fmt.Sprintf(" (%d/%d errors)", r.server.Errors, r.raw.Errors)
		}
		fmt.Fprintf(w, "| %s | %.0f %s/s | %s / %s | %.0f %s/s | %s / %s | %.2f%s%s | %s |\n",
			r.name, r.server.Rate(), r.unit, ms(r.server.P50), ms(r.server.P99),
			r.raw.Rate(), r.unit, ms(r.raw.P50), ms(r.raw.P99), ratio, r.spread(), errs, target)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
