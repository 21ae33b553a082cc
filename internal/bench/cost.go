package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// costEndpoints is how many endpoints the delivery-cost section delivers to:
// the most the delivery section compares.
const costEndpoints = 100

// usage is what a stretch of running cost: CPU seconds of the server, of the
// database server and of this process (the receiver, and the alert source's
// client), the database's statements and rows written (MySQL only; SQLite
// runs inside the server), and the delivery attempts made.
type usage struct {
	serverCPU, dbCPU, benchCPU float64
	statements, rowsWritten    float64
	attempts                   float64
}

// plus is u + k·v.
func (u usage) plus(v usage, k float64) usage {
	return usage{u.serverCPU + k*v.serverCPU, u.dbCPU + k*v.dbCPU, u.benchCPU + k*v.benchCPU,
		u.statements + k*v.statements, u.rowsWritten + k*v.rowsWritten, u.attempts + k*v.attempts}
}

// deliveryCost measures delivery by itself: the alert source alone (no
// write load, so that no noise of the workloads hides it), with no endpoint
// and with costEndpoints of them, and what the runs with endpoints cost more,
// per delivery attempt. It is what the delivery section's ratios come from,
// measured a hundred times more finely.
func (e *env) deliveryCost(ctx context.Context, cfg Config) (none, with usage, err error) {
	rc, hot, err := e.alertSourceAndReceiver(ctx)
	if err != nil {
		return none, with, err
	}
	defer rc.srv.Close()
	dbPid := e.dbPid(ctx)
	for round := range cfg.Rounds {
		for _, n := range []int{0, costEndpoints} {
			ids, err := e.registerEndpoints(ctx, rc.url, n)
			if err != nil {
				return none, with, err
			}
			before, err := e.usage(ctx, dbPid)
			if err != nil {
				return none, with, err
			}
			stop := e.raiseAlerts(ctx, hot)
			if cfg.ProfileDir != "" && round == 0 {
				// Both runs: `go tool pprof -diff_base` of one against the other
				// is delivery alone.
				path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("delivery-cost-%d-endpoints.pprof", n))
				if err := e.fetchProfile(ctx, path, max(1, int(cfg.Duration.Seconds()))); err != nil {
					fmt.Fprintf(cfg.Out, "(no profile: %v)\n", err)
				}
			} else {
				sleep(ctx, cfg.Duration)
			}
			stop()
			after, err := e.usage(ctx, dbPid)
			if err != nil {
				return none, with, err
			}
			if n == 0 {
				none = none.plus(after.plus(before, -1), 1)
			} else {
				with = with.plus(after.plus(before, -1), 1)
			}
			if err := e.deleteEndpoints(ctx, ids); err != nil {
				return none, with, err
			}
		}
		rc.delays() // latencies are the delivery section's: not kept here
	}
	return none, with, ctx.Err()
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// usage reads the counters now; dbPid is the database server's process (0:
// not on this machine). CPU is read first, so that these reads' own cost
// falls outside the stretch they end.
func (e *env) usage(ctx context.Context, dbPid int) (usage, error) {
	u := usage{serverCPU: cpuSeconds(e.server.Process.Pid), benchCPU: cpuSeconds(os.Getpid())}
	if dbPid > 0 {
		u.dbCPU = cpuSeconds(dbPid)
	}
	if err := e.serverDB().QueryRowContext(ctx, "SELECT COUNT(*) FROM alert_delivery_attempts").Scan(&u.attempts); err != nil {
		return u, err
	}
	if e.sqlite {
		return u, nil
	}
	rows, err := e.serverDB().QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Handler_write', 'Handler_update', 'Handler_delete')")
	if err != nil {
		return u, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v float64
		if err := rows.Scan(&name, &v); err != nil {
			return u, err
		}
		if name == "Questions" {
			u.statements = v
		} else {
			u.rowsWritten += v
		}
	}
	return u, rows.Err()
}

// dbPid is the database server's process when it runs on this machine (its
// pid file is readable here), else 0.
func (e *env) dbPid(ctx context.Context) int {
	if e.sqlite {
		return 0
	}
	var pidFile string
	if err := e.serverDB().QueryRowContext(ctx, "SELECT @@pid_file").Scan(&pidFile); err != nil {
		return 0
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// printCost prints what delivery costs by itself, per 1,000 attempts.
func printCost(w io.Writer, alertRate int, none, with usage) {
	fmt.Fprintf(w, "\nWhat delivering costs by itself: the alert source alone (%d changes a second), %d endpoints vs none, same run\n\n", alertRate, costEndpoints)
	fmt.Fprintf(w, "| | attempts | server CPU | database CPU | receiver CPU | statements | rows written |\n|---|---|---|---|---|---|---|\n")
	line := func(name string, u usage) {
		fmt.Fprintf(w, "| %s | %.0f | %.2f s | %s | %.2f s | %s | %s |\n", name, u.attempts, u.serverCPU, orNA(u.dbCPU, "%.2f s"), u.benchCPU,
			orNA(u.statements, "%.0f"), orNA(u.rowsWritten, "%.0f"))
	}
	line("no endpoints", none)
	line(fmt.Sprintf("%d endpoints", costEndpoints), with)
	d := with.plus(none, -1)
	if d.attempts <= 0 {
		fmt.Fprintf(w, "| more, per 1,000 attempts | — | — | — | — | — | — |\n")
		return
	}
	k := 1000 / d.attempts
	fmt.Fprintf(w, "| more, per 1,000 attempts | 1,000 | %.0f ms | %s | %.0f ms | %s | %s |\n", d.serverCPU*k*1000,
		orNA(d.dbCPU*k*1000, "%.0f ms"), d.benchCPU*k*1000, orNA(d.statements*k, "%.0f"), orNA(d.rowsWritten*k, "%.0f"))
}

// orNA formats v, or says it was not measured.
func orNA(v float64, format string) string {
	if v == 0 {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}
