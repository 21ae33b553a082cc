package ledger

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/cloudreseller/credit/internal/credit"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/models"
)

// A partner's records over a time range are counted by day: whole past days
// from allocation_day_counts (each counted once, the first time a listing
// needs it), the rest of the range by its rows. A day is kept only once it
// ended more than closedAfter ago: a change stamps its record when it starts,
// and no change is still in flight a day later, so a kept day never changes.

const day = 24 * time.Hour

// closedAfter is how long after its end a day's count is final.
const closedAfter = day

// dayCount is a row of allocation_day_counts.
type dayCount struct {
	PartnerID   uint
	Day         time.Time
	Records     int64
	Withdrawals int64
}

// countBetween counts the partner's records of the kind (nil: all) created
// in [from, to); a nil bound is open. q selects the partner's records with
// the filter applied.
func (l *Ledger) countBetween(ctx context.Context, q *gorm.DB, partnerID uint, kind *credit.Kind, from, to *time.Time) (int64, error) {
	db := l.db.WithContext(ctx)
	lo, hi := time.Time{}, time.Now().UTC().Add(time.Hour) // records are stamped now, never later
	if from != nil {
		lo = from.UTC()
	} else {
		var p models.Partner
		if err := db.Select("created_at").Take(&p, partnerID).Error; err != nil {
			return 0, err
		}
		lo = p.CreatedAt.UTC() // no record is older than its partner
	}
	if to != nil && to.Before(hi) {
		hi = to.UTC()
	}
	first := lo.Truncate(day)
	if first.Before(lo) {
		first = first.Add(day)
	}
	end := hi.Truncate(day)
	if closed := time.Now().UTC().Add(-closedAfter).Truncate(day); end.After(closed) {
		end = closed
	}
	if !first.Before(end) {
		return database.CountIf(true, q) // no whole past day in the range
	}
	days, err := l.dayCounts(db, partnerID, first, end)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, d := range days {
		switch {
		case kind == nil:
			n += d.Records
		case *kind == credit.KindWithdraw:
			n += d.Withdrawals
		default:
			n += d.Records - d.Withdrawals
		}
	}
	// The rest: from lo to the first whole day, and from the last to hi,
	// each a range of the index (SQLite would scan the whole range for
	// the two joined by OR).
	index := "idx_allocations_partner_created"
	if kind != nil {
		index = "idx_allocations_partner_kind_created"
	}
	edge := func(cond string, at time.Time) (int64, error) {
		return database.CountIf(true, database.SQLiteIndex(q.Session(&gorm.Session{}), "credit_allocations", index).Where(cond, at))
	}
	before, err := edge("created_at < ?", first)
	if err != nil {
		return 0, err
	}
	after, err := edge("created_at >= ?", end)
	return n + before + after, err
}

// dayCounts returns the partner's counts of the days in [first, end), counting
// the days not kept yet and keeping them.
func (l *Ledger) dayCounts(db *gorm.DB, partnerID uint, first, end time.Time) ([]dayCount, error) {
	var kept []dayCount
	if err := db.Where("partner_id = ? AND day >= ? AND day < ?", partnerID, first, end).Order("day").Find(&kept).Error; err != nil {
		return nil, err
	}
	if len(kept) == int(end.Sub(first)/day) {
		return kept, nil
	}
	have := make(map[time.Time]dayCount, len(kept))
	for _, d := range kept {
		have[d.Day.UTC()] = d
	}
	all := make([]dayCount, 0, int(end.Sub(first)/day))
	var missing []dayCount
	for d := first; d.Before(end); d = d.Add(day) {
		c, ok := have[d]
		if !ok {
			// One day of the partner's records is a range of its
			// (partner, created_at) index: together, no more than
			// counting the whole range once.
			c = dayCount{PartnerID: partnerID, Day: d}
			inDay := db.Model(&models.CreditAllocation{}).Where("partner_id = ? AND created_at >= ? AND created_at < ?", partnerID, d, d.Add(day))
			if err := inDay.Session(&gorm.Session{}).Count(&c.Records).Error; err != nil {
				return nil, err
			}
			// Withdrawals by their own index, (partner, kind, created_at):
			// reading each record's kind would visit every row.
			if err := inDay.Where("kind = ?", credit.KindWithdraw).Count(&c.Withdrawals).Error; err != nil {
				return nil, err
			}
			missing = append(missing, c)
		}
		all = append(all, c)
	}
	// Two listings may count the same day at once: the first keeps it.
	err := db.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(missing, 500).Error
	return all, err
}

// TableName is where day counts are kept.
func (dayCount) TableName() string { return "allocation_day_counts" }
