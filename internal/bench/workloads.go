package bench

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/cloudreseller/credit/internal/money"
)

// workload is one thing to measure, through the server and raw.
type workload struct {
	name, unit string
	clients    int
	target     float64
	server     func(ctx context.Context, client, i int) (int, error)
	raw        func(ctx context.Context, client, i int) (int, error)
}

// throughput measures the workloads at 1,000 customers, interleaving server
// and raw, and returns the table's rows.
func (e *env) throughput(ctx context.Context, cfg Config) ([]row, error) {
	if err := e.loadPartners(ctx); err != nil {
		return nil, err
	}
	work := []workload{
		{name: "`setCredit`, 32 clients, random customers of 4 partners", unit: "changes", clients: 32, target: 0.80,
			server: e.serverSetCredit, raw: e.rawSetCredit},
		{name: "`recordUsage`, batches of 500 over 1,000 random customers, 4 clients", unit: "events", clients: 4, target: 0.60,
			server: e.serverUsage, raw: e.rawUsage},
		{name: "`customer(id)`, 32 clients", unit: "reads", clients: 32, target: 0.40,
			server: e.serverCustomer, raw: e.rawCustomer},
		{name: "`customers(first: 50)`, 32 clients", unit: "pages", clients: 32, target: 0.25,
			server: e.serverPage, raw: e.rawPage},
	}
	work = slices.DeleteFunc(work, func(w workload) bool { return !cfg.wants(w.name) })
	results := make([][2][]Result, len(work))
	for round := range cfg.Rounds {
		e.round = round
		for i, w := range work {
			server := measure
			if round == 0 && cfg.ProfileDir != "" {
				server = func(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, client, i int) (int, error)) Result {
					r, err := e.profiled(ctx, cfg.ProfileDir, w.name, clients, d, op)
					if err != nil {
						fmt.Fprintf(cfg.Out, "(no profile of %s: %v)\n", w.name, err)
					}
					return r
				}
			}
			results[i][0] = append(results[i][0], server(ctx, w.clients, cfg.Duration, w.server))
			results[i][1] = append(results[i][1], measure(ctx, w.clients, cfg.Duration, w.raw))
		}
	}
	var rows []row
	for i, w := range work {
		if e.sqlite {
			// The targets compare with MySQL over the network; raw SQLite
			// is a call into the same process (a customer by id in 0.03 ms),
			// so its ratio is the cost of HTTP and GraphQL alone.
			w.target = 0
		}
		rows = append(rows, row{name: w.name, unit: w.unit, target: w.target,
			server: median(results[i][0]), raw: median(results[i][1])})
	}
	return rows, ctx.Err()
}

// alertCost measures what raising alerts costs: 32 clients each alternate
// -14.00 and +14.00 on a customer of their own, at 74 % usage (every
// withdrawal crosses 75 % and raises USAGE_THRESHOLD, every top-up raises
// RECOVERED) and, interleaved, at 10 % usage (no alert).
func (e *env) alertCost(ctx context.Context, cfg Config) (row, error) {
	const clients = 32
	hot, err := e.customersAt(ctx, clients, "740.00")
	if err != nil {
		return row{}, err
	}
	cold, err := e.customersAt(ctx, clients, "100.00")
	if err != nil {
		return row{}, err
	}
	swing := func(cs []customer) func(ctx context.Context, client, i int) (int, error) {
		return func(ctx context.Context, client, i int) (int, error) { return 1, e.swingCredit(ctx, cs[client], i) }
	}
	var withAlerts, without []Result
	for range cfg.Rounds {
		// Each measurement ends after a top-up or a withdrawal: start from a
		// known state, back at 74 % (and 10 %).
		withAlerts = append(withAlerts, measure(ctx, clients, cfg.Duration, swing(hot)))
		without = append(without, measure(ctx, clients, cfg.Duration, swing(cold)))
		if err := e.resetCredit(ctx, hot); err != nil {
			return row{}, err
		}
		if err := e.resetCredit(ctx, cold); err != nil {
			return row{}, err
		}
	}
	return row{name: "`setCredit` ±14.00, 32 clients: every change raising an alert, 75 % crossed or recovered (server) vs none (raw column)",
		unit: "changes", target: 0.90, server: median(withAlerts), raw: median(without)}, ctx.Err()
}

// swingCredit withdraws 14.00 from c on even steps and gives it back on odd
// ones: at 74 % usage each change crosses 75 % or recovers from it.
func (e *env) swingCredit(ctx context.Context, c customer, step int) error {
	amount := "-14.00"
	if step%2 == 1 {
		amount = "14.00"
	}
	return e.gql(ctx, e.partnerKeys[c.partner], `mutation($c: ID!, $a: Decimal!) { setCredit(input: {customerId: $c, amount: $a}) { allocation { id } } }`,
		map[string]any{"c": fmt.Sprint(c.id), "a": amount}, nil)
}

// customersAt makes n customers, spread over the partners, with 1,000.00 of
// credit and the given usage.
func (e *env) customersAt(ctx context.Context, n int, used string) ([]customer, error) {
	var out []customer
	for i := range n {
		p := i % partners
		id, err := e.createCustomer(ctx, p, 10000+i)
		if err != nil {
			return nil, err
		}
		c := customer{id: id, partner: p}
		if err := e.resetTo(ctx, c, "1000.00"); err != nil {
			return nil, err
		}
		if err := e.gql(ctx, e.billingKey, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
			map[string]any{"in": map[string]any{"events": []any{map[string]any{
				"eventId": fmt.Sprintf("swing-%d-%s", id, used), "customerId": fmt.Sprint(id), "amount": used}}}}, nil); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// resetCredit puts every customer's credit back to 1,000.00.
func (e *env) resetCredit(ctx context.Context, cs []customer) error {
	for _, c := range cs {
		if err := e.resetTo(ctx, c, "1000.00"); err != nil {
			return err
		}
	}
	return nil
}

// resetTo sets a customer's credit to the amount.
func (e *env) resetTo(ctx context.Context, c customer, amount string) error {
	var out struct {
		Customer struct{ Credit string }
	}
	if err := e.gql(ctx, e.partnerKeys[c.partner], `query($c: ID!) { customer(id: $c) { credit } }`, map[string]any{"c": fmt.Sprint(c.id)}, &out); err != nil {
		return err
	}
	want, err := money.Parse(amount)
	if err != nil {
		return err
	}
	have, err := money.Parse(out.Customer.Credit)
	if err != nil || want == have {
		return err
	}
	return e.gql(ctx, e.partnerKeys[c.partner], `mutation($c: ID!, $a: Decimal!) { setCredit(input: {customerId: $c, amount: $a}) { allocation { id } } }`,
		map[string]any{"c": fmt.Sprint(c.id), "a": (want - have).String()}, nil)
}

// loadPartners reads each customer's partner id, for the raw transactions.
func (e *env) loadPartners(ctx context.Context) error {
	rows, err := e.raw.QueryContext(ctx, "SELECT id, partner_id FROM customers")
	if err != nil {
		return err
	}
	defer rows.Close()
	byID := map[int64]int64{}
	for rows.Next() {
		var id, p int64
		if err := rows.Scan(&id, &p); err != nil {
			return err
		}
		byID[id] = p
	}
	for i := range e.customers {
		e.customers[i].partnerID = byID[e.customers[i].id]
	}
	return rows.Err()
}

func (e *env) anyCustomer() customer { return e.customers[rand.IntN(len(e.customers))] }

func (e *env) serverSetCredit(ctx context.Context, _, _ int) (int, error) {
	c := e.anyCustomer()
	return 1, e.gql(ctx, e.partnerKeys[c.partner], `mutation($c: ID!) { setCredit(input: {customerId: $c, amount: "0.01"}) { allocation { id } } }`,
		map[string]any{"c": fmt.Sprint(c.id)}, nil)
}

// rawSetCredit is the least a credit change takes: lock the partner and the
// customer, update both, insert the record.
func (e *env) rawSetCredit(ctx context.Context, _, _ int) (int, error) {
	c := e.anyCustomer()
	return 1, e.tx(ctx, func(tx *sql.Tx) error {
		var line, allocated, credit, used int64
		if err := tx.QueryRowContext(ctx, "SELECT credit_line, allocated FROM partners WHERE id = ?"+e.forUpdate(), c.partnerID).Scan(&line, &allocated); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, "SELECT credit, used FROM customers WHERE id = ?"+e.forUpdate(), c.id).Scan(&credit, &used); err != nil {
			return err
		}
		now := time.Now().UTC()
		after := credit + 1
		if _, err := tx.ExecContext(ctx, "UPDATE customers SET credit = ?, available = ?, usage_basis_points = ?, status = 'ACTIVE', updated_at = ? WHERE id = ?",
			after, max(0, after-used), used*10000/max(after, 1), now, c.id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE partners SET allocated = ? WHERE id = ?", allocated+1, c.partnerID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO credit_allocations (partner_id, customer_id, kind, amount, credit_before, credit_after, available_after, operator, request_hash, created_at) VALUES (?, ?, 'ALLOCATE', 1, ?, ?, ?, 'bench', '', ?)",
			c.partnerID, c.id, credit, after, max(0, after-used), now)
		return err
	})
}

const batchSize = 500

// batch picks the customers of a usage batch and names its events uniquely.
func (e *env) batch(prefix string, client, i int) ([]customer, []string) {
	cs := make([]customer, batchSize)
	ids := make([]string, batchSize)
	for j := range cs {
		cs[j] = e.anyCustomer()
		ids[j] = fmt.Sprintf("%s%d-%d-%d-%d", prefix, e.round, client, i, j)
	}
	return cs, ids
}

func (e *env) serverUsage(ctx context.Context, client, i int) (int, error) {
	cs, ids := e.batch("s", client, i)
	events := make([]map[string]any, len(cs))
	for j, c := range cs {
		events[j] = map[string]any{"eventId": ids[j], "customerId": fmt.Sprint(c.id), "amount": "0.01"}
	}
	return batchSize, e.gql(ctx, e.billingKey, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
		map[string]any{"in": map[string]any{"events": events}}, nil)
}

// rawUsage is the least a usage batch takes: read and lock its customers in
// one statement, insert its events in one, update the customers in one.
func (e *env) rawUsage(ctx context.Context, client, i int) (int, error) {
	cs, ids := e.batch("r", client, i)
	return batchSize, e.tx(ctx, func(tx *sql.Tx) error {
		distinct := map[int64]int64{} // customer → usage added
		for _, c := range cs {
			distinct[c.id]++
		}
		in, args := inList(distinct)
		rows, err := tx.QueryContext(ctx, "SELECT id, credit, used FROM customers WHERE id IN ("+in+") ORDER BY id"+e.forUpdate(), args...)
		if err != nil {
			return err
		}
		type bal struct{ credit, used int64 }
		balances := map[int64]bal{}
		for rows.Next() {
			var id int64
			var b bal
			if err := rows.Scan(&id, &b.credit, &b.used); err != nil {
				rows.Close()
				return err
			}
			balances[id] = b
		}
		rows.Close()
		now := time.Now().UTC()
		var values strings.Builder
		eventArgs := make([]any, 0, len(cs)*6)
		for j, c := range cs {
			if j > 0 {
				values.WriteString(", ")
			}
			values.WriteString("(?, ?, ?, 1, ?, ?)")
			eventArgs = append(eventArgs, ids[j], c.partnerID, c.id, now, now)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO usage_events (event_id, partner_id, customer_id, amount, occurred_at, created_at) VALUES "+values.String(), eventArgs...); err != nil {
			return err
		}
		var used, avail strings.Builder
		updateArgs := make([]any, 0, len(distinct)*4+1)
		var availArgs []any
		for id, n := range distinct {
			b := balances[id]
			used.WriteString(" WHEN ? THEN ?")
			avail.WriteString(" WHEN ? THEN ?")
			updateArgs = append(updateArgs, id, b.used+n)
			availArgs = append(availArgs, id, max(0, b.credit-b.used-n))
		}
		updateArgs = append(append(updateArgs, availArgs...), now)
		updateArgs = append(updateArgs, args...)
		if _, err = tx.ExecContext(ctx, "UPDATE customers SET used = CASE id"+used.String()+" END, available = CASE id"+avail.String()+
			" END, updated_at = ? WHERE id IN ("+in+")", updateArgs...); err != nil {
			return err
		}
		return e.addUsageHours(ctx, tx, distinct, now)
	})
}

// usageHour is the hour t falls in, as the server keeps usage by hour: hours
// since 1970-01-01 UTC.
func usageHour(t time.Time) int64 { return t.Unix() / 3600 }

// addUsageHours adds each customer's usage to its hour, as the server keeps
// usage by hour for the depletion forecast (internal/ledger/usagehours.go).
func (e *env) addUsageHours(ctx context.Context, tx *sql.Tx, usage map[int64]int64, at time.Time) error {
	ids := slices.Sorted(maps.Keys(usage))
	hour := usageHour(at)
	var values strings.Builder
	args := make([]any, 0, 3*len(ids))
	for j, id := range ids {
		if j > 0 {
			values.WriteString(", ")
		}
		values.WriteString("(?, ?, ?)")
		args = append(args, id, hour, usage[id])
	}
	upsert := " ON DUPLICATE KEY UPDATE amount = amount + VALUES(amount)"
	if e.sqlite {
		upsert = " ON CONFLICT (customer_id, hour) DO UPDATE SET amount = amount + excluded.amount"
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO usage_hours (customer_id, hour, amount) VALUES "+values.String()+upsert, args...)
	return err
}

func inList(ids map[int64]int64) (string, []any) {
	args := make([]any, 0, len(ids))
	for id := range ids {
		args = append(args, id)
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", "), args
}

const customerFields = `id name email credit used available usagePercent status`

func (e *env) serverCustomer(ctx context.Context, _, _ int) (int, error) {
	c := e.anyCustomer()
	return 1, e.gql(ctx, e.partnerKeys[c.partner], `query($id: ID!) { customer(id: $id) { `+customerFields+` } }`,
		map[string]any{"id": fmt.Sprint(c.id)}, nil)
}

// customerColumns is a whole customer row.
const customerColumns = "id, partner_id, name, email, remark, billing_permission, non_stop_privilege, credit, used, available, usage_basis_points, status, created_at, updated_at"

func scanCustomers(rows *sql.Rows) (int, error) {
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id, partner, credit, used, available, bp int64
			name, status                             string
			email, remark                            sql.NullString
			billing, nonStop                         bool
			created                                  time.Time
			updated                                  sql.NullTime
		)
		if err := rows.Scan(&id, &partner, &name, &email, &remark, &billing, &nonStop, &credit, &used, &available, &bp, &status, &created, &updated); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

func (e *env) rawCustomer(ctx context.Context, _, _ int) (int, error) {
	rows, err := e.raw.QueryContext(ctx, "SELECT "+customerColumns+" FROM customers WHERE id = ?", e.anyCustomer().id)
	if err != nil {
		return 0, err
	}
	_, err = scanCustomers(rows)
	return 1, err
}

func (e *env) serverPage(ctx context.Context, _, _ int) (int, error) {
	c := e.anyCustomer()
	return 1, e.gql(ctx, e.partnerKeys[c.partner], `{ customers(first: 50) { nodes { `+customerFields+` } pageInfo { hasNextPage endCursor } } }`, nil, nil)
}

func (e *env) rawPage(ctx context.Context, _, _ int) (int, error) {
	rows, err := e.raw.QueryContext(ctx, "SELECT "+customerColumns+" FROM customers WHERE partner_id = ? ORDER BY created_at DESC, id DESC LIMIT 51", e.anyCustomer().partnerID)
	if err != nil {
		return 0, err
	}
	_, err = scanCustomers(rows)
	return 1, err
}

// tx runs fn in a transaction. The pool is the server's own (database.Open):
// its MySQL connections read committed data, as the server's do.
func (e *env) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := e.raw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (e *env) forUpdate() string {
	if e.sqlite {
		return ""
	}
	return " FOR UPDATE"
}
