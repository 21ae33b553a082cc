package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"

	_ "github.com/glebarez/go-sqlite" // the SQLite driver, to read the server's file
)

const (
	partners             = 4
	customersPerPartner  = 250
	creditPerCustomer    = "1000000.00"
	partnerLineMinorUnit = "1000000000"
)

// seed creates the partners, keys and customers through the API, then copies
// them into the scratch schema so that both sides work on the same rows.
func (e *env) seed(ctx context.Context) error {
	for p := range partners {
		var out struct{ CreatePartner struct{ ID string } }
		if err := e.gql(ctx, e.admin, `mutation($n: String!, $l: Decimal!) { createPartner(input: {name: $n, creditLine: $l}) { id } }`,
			map[string]any{"n": fmt.Sprint("Partner ", p), "l": partnerLineMinorUnit}, &out); err != nil {
			return err
		}
		key, err := e.createKey(ctx, "PARTNER", out.CreatePartner.ID)
		if err != nil {
			return err
		}
		e.partnerKeys = append(e.partnerKeys, key)
		e.partnerIDs = append(e.partnerIDs, out.CreatePartner.ID)
	}
	var err error
	if e.billingKey, err = e.createKey(ctx, "BILLING", ""); err != nil {
		return err
	}
	if err := e.seedCustomers(ctx); err != nil {
		return err
	}
	return e.copyToRaw(ctx)
}

func (e *env) createKey(ctx context.Context, role, partner string) (string, error) {
	in := map[string]any{"name": role + " bench " + partner, "role": role}
	if partner != "" {
		in["partnerId"] = partner
	}
	var out struct {
		CreateAPIKey struct{ Key string } `json:"createApiKey"`
	}
	err := e.gql(ctx, e.admin, `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { key } }`, map[string]any{"in": in}, &out)
	return out.CreateAPIKey.Key, err
}

// seedCustomers creates every partner's customers with credit, 16 at a time.
func (e *env) seedCustomers(ctx context.Context) error {
	type job struct{ partner, n int }
	jobs := make(chan job)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				id, err := e.createCustomer(ctx, j.partner, j.n)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					e.customers = append(e.customers, customer{id: id, partner: j.partner})
				}
				mu.Unlock()
			}
		}()
	}
	for p := range partners {
		for n := range customersPerPartner {
			jobs <- job{p, n}
		}
	}
	close(jobs)
	wg.Wait()
	return firstErr
}

func (e *env) createCustomer(ctx context.Context, p, n int) (int64, error) {
	key := e.partnerKeys[p]
	var out struct{ CreateCustomer struct{ ID string } }
	if err := e.gql(ctx, key, `mutation($n: String!, $m: String) { createCustomer(input: {name: $n, email: $m}) { id } }`,
		map[string]any{"n": fmt.Sprintf("Customer %d-%d", p, n), "m": fmt.Sprintf("c%d-%d@example.com", p, n)}, &out); err != nil {
		return 0, err
	}
	if err := e.gql(ctx, key, `mutation($c: ID!, $a: Decimal!) { setCredit(input: {customerId: $c, amount: $a}) { allocation { id } } }`,
		map[string]any{"c": out.CreateCustomer.ID, "a": creditPerCustomer}, nil); err != nil {
		return 0, err
	}
	var id int64
	_, err := fmt.Sscan(out.CreateCustomer.ID, &id)
	return id, err
}

// copyToRaw copies partners and customers, as the server wrote them, into the
// scratch schema.
func (e *env) copyToRaw(ctx context.Context) error {
	from := e.srvDB
	for _, table := range []string{"partners", "customers"} {
		if err := copyTable(ctx, from, e.raw, table); err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
	}
	return nil
}

func copyTable(ctx context.Context, from, to *sql.DB, table string) error {
	rows, err := from.QueryContext(ctx, "SELECT * FROM "+table)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	insert := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	tx, err := to.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insert, vals...); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tx.Commit()
}
