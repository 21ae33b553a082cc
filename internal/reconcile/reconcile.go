// Package reconcile verifies a whole store against the balance rules: that the
// records add up to the balances, the derived figures follow the rules, and
// every threshold crossing in the records raised exactly one alert. It reads
// only, so it can run next to a serving process.
//
// The checks, per customer: allocation records sum to its credit and chain
// (each record's creditBefore is the previous record's creditAfter); usage
// events sum to its used amount; the stored available, usage and status are
// what internal/credit computes. Per partner: its customers' credit sums to
// allocated, which stays within the credit line, and its record counters match
// its records. Alerts: replaying each
// customer's records in the order they were written gives exactly the
// alerts stored, numbered or still in the outbox (threshold, used and credit
// of each), and alert ids run from 1 to the sequence's last id without a gap.
// Day counts kept for time-range totals match the records of their day, and
// usage kept by hour adds up to each customer's usage events.
package reconcile

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/rules"
	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/money"
	"github.com/cloudreseller/credit/models"
)

// maxDrifts bounds what a report lists; the count goes on.
const maxDrifts = 1000

// Report is what a run checked and the drifts it found.
type Report struct {
	Partners, Customers, Allocations, UsageEvents, Alerts int64
	// DriftCount counts every drift found; Drifts lists the first maxDrifts.
	DriftCount int
	Drifts     []string
}

// Clean tells whether no drift was found.
func (r *Report) Clean() bool { return r.DriftCount == 0 }

func (r *Report) drift(format string, args ...any) {
	r.DriftCount++
	if len(r.Drifts) < maxDrifts {
		r.Drifts = append(r.Drifts, fmt.Sprintf(format, args...))
	}
}

// Print writes the report for an operator.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "checked %d partners, %d customers, %d allocation records, %d usage events, %d alerts\n",
		r.Partners, r.Customers, r.Allocations, r.UsageEvents, r.Alerts)
	for _, d := range r.Drifts {
		fmt.Fprintln(w, "DRIFT:", d)
	}
	if r.DriftCount > len(r.Drifts) {
		fmt.Fprintf(w, "… and %d more\n", r.DriftCount-len(r.Drifts))
	}
	if r.Clean() {
		fmt.Fprintln(w, "no drift")
	} else {
		fmt.Fprintf(w, "%d drifts\n", r.DriftCount)
	}
}

// Run checks the whole store, as it was at one moment: it runs beside
// servers that keep writing, and its reads, table by table, must not see one
// table before a change and the next after it (a customer's usage with a
// batch, its events without). A read-only transaction gives that moment:
// REPEATABLE READ's snapshot on MySQL (the server's own sessions read
// committed), a deferred read transaction on SQLite's WAL, which takes no
// write lock, so servers go on writing meanwhile.
func Run(ctx context.Context, db *gorm.DB) (*Report, error) {
	r := &Report{}
	opts := &sql.TxOptions{ReadOnly: true}
	if database.IsMySQL(db) {
		opts.Isolation = sql.LevelRepeatableRead
	}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		credits, records, err := r.checkCustomers(tx)
		if err != nil {
			return err
		}
		if err := r.checkPartners(tx, credits); err != nil {
			return err
		}
		if err := r.checkHistory(tx, records); err != nil {
			return err
		}
		if err := r.checkAlertIDs(tx); err != nil {
			return err
		}
		return r.checkDayCounts(tx)
	}, opts)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// checkDayCounts recounts every day count kept for time-range totals.
func (r *Report) checkDayCounts(db *gorm.DB) error {
	var days []struct {
		PartnerID            uint
		Day                  time.Time
		Records, Withdrawals int64
	}
	if err := db.Table("allocation_day_counts").Find(&days).Error; err != nil {
		return err
	}
	for _, d := range days {
		var got struct{ Records, Withdrawals int64 }
		err := db.Model(&models.CreditAllocation{}).
			Select("COUNT(*) AS records, COALESCE(SUM(CASE WHEN kind = 'WITHDRAW' THEN 1 ELSE 0 END), 0) AS withdrawals").
			Where("partner_id = ? AND created_at >= ? AND created_at < ?", d.PartnerID, d.Day, d.Day.Add(24*time.Hour)).Scan(&got).Error
		if err != nil {
			return err
		}
		if got.Records != d.Records || got.Withdrawals != d.Withdrawals {
			r.drift("partner %d: day %s is kept as %d records (%d withdrawals), but has %d (%d)",
				d.PartnerID, d.Day.UTC().Format("2006-01-02"), d.Records, d.Withdrawals, got.Records, got.Withdrawals)
		}
	}
	return nil
}

// checkUsageHours checks that each customer's usage kept by hour (for
// forecasts over a window) adds up to its usage events.
func (r *Report) checkUsageHours(events, hours map[uint]money.Amount) {
	for _, id := range slices.Sorted(maps.Keys(hours)) {
		if hours[id] != events[id] {
			r.drift("customer %d: usage kept by hour sums to %s, but its usage events sum to %s", id, hours[id], events[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(events)) {
		if _, ok := hours[id]; !ok && events[id] != 0 {
			r.drift("customer %d: usage events sum to %s, but none is kept by hour", id, events[id])
		}
	}
}

// sums returns SUM(amount) per customer of the table q reads.
// sums adds up a table's amounts by customer, and counts its rows by
// customer into records.
func sums(q *gorm.DB, records map[uint]int) (map[uint]money.Amount, error) {
	var rows []struct {
		CustomerID uint
		Total      money.Amount
		N          int
	}
	err := q.Select("customer_id, SUM(amount) AS total, COUNT(*) AS n").Group("customer_id").Scan(&rows).Error
	out := make(map[uint]money.Amount, len(rows))
	for _, row := range rows {
		out[row.CustomerID] = row.Total
		records[row.CustomerID] += row.N
	}
	return out, err
}

// checkCustomers checks each customer's balance against its records and the
// rules, and returns the sum of credit per partner and how many allocation
// records and usage events each customer has (counted with their sums, for
// checkHistory's chunks).
func (r *Report) checkCustomers(db *gorm.DB) (credits map[uint]money.Amount, records map[uint]int, err error) {
	records = map[uint]int{}
	allocated, err := sums(db.Model(&models.CreditAllocation{}), records)
	if err != nil {
		return nil, nil, err
	}
	used, err := sums(db.Model(&models.UsageEvent{}), records)
	if err != nil {
		return nil, nil, err
	}
	byHour, err := sums(db.Table("usage_hours"), map[uint]int{})
	if err != nil {
		return nil, nil, err
	}
	r.checkUsageHours(used, byHour)
	perPartner := map[uint]money.Amount{}
	var batch []*models.Customer
	err = db.Order("id").FindInBatches(&batch, 1000, func(*gorm.DB, int) error {
		for _, c := range batch {
			r.Customers++
			perPartner[c.PartnerID] += c.Credit
			r.checkCustomer(c, allocated[c.ID], used[c.ID])
		}
		return nil
	}).Error
	return perPartner, records, err
}

func (r *Report) checkCustomer(c *models.Customer, allocated, used money.Amount) {
	if c.Credit != allocated {
		r.drift("customer %d: credit %s, but its allocation records sum to %s", c.ID, c.Credit, allocated)
	}
	if c.Used != used {
		r.drift("customer %d: used %s, but its usage events sum to %s", c.ID, c.Used, used)
	}
	want := *c
	want.Refresh()
	if c.Available != want.Available || c.UsageBasisPoints != want.UsageBasisPoints || c.Status != want.Status {
		r.drift("customer %d: stored available %s, usage %d bp, status %s; the rules give %s, %d bp, %s",
			c.ID, c.Available, c.UsageBasisPoints, c.Status, want.Available, want.UsageBasisPoints, want.Status)
	}
}

func (r *Report) checkPartners(db *gorm.DB, credits map[uint]money.Amount) error {
	var partners []*models.Partner
	if err := db.Order("id").Find(&partners).Error; err != nil {
		return err
	}
	var counted []struct {
		PartnerID      uint
		All, Withdrawn int64
	}
	if err := db.Model(&models.CreditAllocation{}).
		Select("partner_id, COUNT(*) AS `all`, SUM(CASE WHEN kind = 'WITHDRAW' THEN 1 ELSE 0 END) AS withdrawn").
		Group("partner_id").Scan(&counted).Error; err != nil {
		return err
	}
	type count struct{ all, withdrawn int64 }
	records := map[uint]count{}
	for _, c := range counted {
		records[c.PartnerID] = count{c.All, c.Withdrawn}
	}
	for _, p := range partners {
		r.Partners++
		if p.Allocated != credits[p.ID] {
			r.drift("partner %d: allocated %s, but its customers' credit sums to %s", p.ID, p.Allocated, credits[p.ID])
		}
		if p.Allocated > p.CreditLine || p.Allocated < 0 {
			r.drift("partner %d: allocated %s is outside its credit line %s", p.ID, p.Allocated, p.CreditLine)
		}
		if n := records[p.ID]; p.AllocationRecords != n.all || p.WithdrawRecords != n.withdrawn {
			r.drift("partner %d: counts %d allocation records (%d withdrawals), but has %d (%d)",
				p.ID, p.AllocationRecords, p.WithdrawRecords, n.all, n.withdrawn)
		}
	}
	return nil
}

func (r *Report) checkAlertIDs(db *gorm.DB) error {
	var stats struct {
		N   int64
		Max uint
	}
	if err := db.Model(&models.Alert{}).Select("COUNT(*) AS n, COALESCE(MAX(id), 0) AS max").Scan(&stats).Error; err != nil {
		return err
	}
	var seq models.AlertSequence
	if err := db.Take(&seq, 1).Error; err != nil {
		return err
	}
	if uint(stats.N) != stats.Max || stats.Max != seq.LastID {
		r.drift("alert ids: %d alerts, highest id %d, sequence at %d (they must be equal: ids run from 1 without gaps)",
			stats.N, stats.Max, seq.LastID)
	}
	return nil
}

// step is one record of a customer's history: a credit change or usage.
type step struct {
	at                  time.Time
	id                  uint
	usage               bool
	amount              money.Amount
	before, creditAfter money.Amount // allocation records only
}

// raised is an alert as the history implies it or as stored.
type raised struct {
	kind, recoveredKind string
	threshold           int
	level               money.Amount // -1: none
	used, credit        money.Amount
}

func (k raised) String() string {
	what := k.kind
	switch {
	case k.recoveredKind != "":
		what += " of " + k.recoveredKind
	}
	if k.threshold != 0 {
		what += fmt.Sprintf(" %d %%", k.threshold)
	}
	if k.level >= 0 {
		what += " " + k.level.String()
	}
	return fmt.Sprintf("%s (used %s of %s)", what, k.used, k.credit)
}

// checkHistory replays every customer's allocation records and usage events
// in the order they were written, under the alert rules in force at each
// (their changes are recorded), and compares the alerts the rules raise with
// the alerts stored. Status changes are not compared: privileges change a
// customer's status too, and their changes are not recorded; nor are depletion
// forecasts, which time moves as well as records.
func (r *Report) checkHistory(db *gorm.DB, records map[uint]int) error {
	h, err := loadRuleHistory(db)
	if err != nil {
		return err
	}
	counts, err := recordsPerCustomer(db, records)
	if err != nil {
		return err
	}
	var ids []uint
	held := 0
	for _, c := range counts {
		if len(ids) > 0 && held+c.n > historyRows {
			if err := r.checkHistoryOf(db, h, ids); err != nil {
				return err
			}
			ids, held = nil, 0
		}
		ids, held = append(ids, c.id), held+c.n
	}
	if len(ids) == 0 {
		return nil
	}
	return r.checkHistoryOf(db, h, ids)
}

// historyRows bounds the records checkHistory holds at once (about 130
// bytes each); a customer with more is read on its own. (A variable: the
// tests make it small, so that their stores are read in several chunks.)
var historyRows = 200_000

// customerRecords is how many records of the replayed tables a customer has.
type customerRecords struct {
	id uint
	n  int
}

// recordsPerCustomer adds each customer's alerts, numbered or not, to its
// records (allocation records and usage events, counted with their sums),
// and lists the customers that have any, in customer order.
func recordsPerCustomer(db *gorm.DB, records map[uint]int) ([]customerRecords, error) {
	per := maps.Clone(records)
	for _, table := range []string{"alerts", "raised_alerts"} {
		var rows []struct {
			CustomerID uint
			N          int
		}
		if err := db.Raw("SELECT customer_id, COUNT(*) AS n FROM " + table + " GROUP BY customer_id").Scan(&rows).Error; err != nil {
			return nil, err
		}
		for _, r := range rows {
			per[r.CustomerID] += r.N
		}
	}
	out := make([]customerRecords, 0, len(per))
	for _, id := range slices.Sorted(maps.Keys(per)) {
		out = append(out, customerRecords{id, per[id]})
	}
	return out, nil
}

// checkHistoryOf replays the records of customers ids (in order, and every
// customer with records between the first and the last).
func (r *Report) checkHistoryOf(db *gorm.DB, h *ruleHistory, ids []uint) error {
	lo, hi := ids[0], ids[len(ids)-1]
	allocs, err := readGroups(db.Model(&models.CreditAllocation{}).
		Select("customer_id, id, created_at, amount, credit_before, credit_after").
		Where("customer_id BETWEEN ? AND ?", lo, hi).Order("customer_id, created_at, id"))
	if err != nil {
		return err
	}
	usage, err := readGroups(db.Model(&models.UsageEvent{}).
		Select("customer_id, id, created_at, amount").
		Where("customer_id BETWEEN ? AND ?", lo, hi).Order("customer_id, created_at, id"))
	if err != nil {
		return err
	}
	// Alerts still in the outbox count (numbered or not, each is read once:
	// the transaction sees the store at one instant, and numbering moves
	// rows in one transaction).
	const columns = "customer_id, created_at, threshold, used, credit, kind, level, recovered_kind"
	const replayed = " WHERE kind NOT IN ('STATUS_CHANGED', 'DEPLETION_FORECAST') AND customer_id BETWEEN ? AND ?"
	alerts, err := readGroups(db.Raw("SELECT "+columns+", id FROM alerts"+replayed+
		" UNION ALL SELECT "+columns+", 0 FROM raised_alerts"+replayed+" ORDER BY customer_id, id", lo, hi, lo, hi))
	if err != nil {
		return err
	}
	for _, id := range ids {
		a, u, al := allocs.take(id), usage.take(id), alerts.take(id)
		r.Allocations += int64(len(a))
		r.UsageEvents += int64(len(u))
		r.Alerts += int64(len(al))
		r.replay(id, h, a, u, al)
	}
	return nil
}

// replay checks one customer's history against its alerts.
func (r *Report) replay(customer uint, h *ruleHistory, allocs, usage, alerts []row) {
	steps := make([]step, 0, len(allocs)+len(usage))
	for _, a := range allocs {
		steps = append(steps, step{at: a.CreatedAt, id: a.ID, amount: a.Amount, before: a.CreditBefore, creditAfter: a.CreditAfter})
	}
	for _, u := range usage {
		steps = append(steps, step{at: u.CreatedAt, id: u.ID, usage: true, amount: u.Amount})
	}
	slices.SortStableFunc(steps, func(x, y step) int { return x.at.Compare(y.at) })

	var b credit.Balance
	var fired rules.Fired
	var want []raised
	for _, s := range steps {
		before := b
		if s.usage {
			b.Used += s.amount
		} else {
			if s.before != b.Credit || s.creditAfter != b.Credit+s.amount {
				r.drift("customer %d: allocation record %d goes from %s to %s, but the credit before it was %s",
					customer, s.id, s.before, s.creditAfter, b.Credit)
			}
			b.Credit += s.amount
		}
		var events []rules.Event
		events, fired = rules.Evaluate(h.at(customer, s.at), fired, rules.State{Balance: before}, rules.State{Balance: b})
		for _, e := range events {
			if h.beforeKinds(s.at) && e.Kind != rules.UsageThreshold {
				continue // raised by a build that knew only usage thresholds
			}
			want = append(want, raisedOf(e, b))
		}
	}
	got := make([]raised, len(alerts))
	for i, a := range alerts {
		got[i] = raised{kind: a.Kind, threshold: a.Threshold, level: -1, used: a.Used, credit: a.Credit}
		if a.Level != nil {
			got[i].level = *a.Level
		}
		if a.RecoveredKind != nil {
			got[i].recoveredKind = *a.RecoveredKind
		}
	}
	r.compareAlerts(customer, want, got)
}

func raisedOf(e rules.Event, b credit.Balance) raised {
	k := raised{kind: string(e.Kind), recoveredKind: string(e.RecoveredKind), threshold: e.Threshold, level: -1, used: b.Used, credit: b.Credit}
	if e.Level != nil {
		k.level = *e.Level
	}
	return k
}

// compareAlerts reports crossings without an alert and alerts without a
// crossing (compared as multisets: two records written in the same
// microsecond have no order to replay them in).
func (r *Report) compareAlerts(customer uint, want, got []raised) {
	count := map[raised]int{}
	for _, w := range want {
		count[w]++
	}
	for _, g := range got {
		count[g]--
	}
	for k, n := range count {
		switch {
		case n > 0:
			r.drift("customer %d: %d × %s implied by the records, without an alert", customer, n, k)
		case n < 0:
			r.drift("customer %d: %d alert(s) %s that no record explains, or raised twice", customer, -n, k)
		}
	}
}
