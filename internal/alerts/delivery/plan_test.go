package delivery_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/testenv"
)

// Every dispatcher pass asks which targets have deliveries due. With
// endpoints too slow to keep up, tens of thousands of deliveries wait: MySQL
// must answer from the due index one step per target (a loose index scan),
// not by reading every pending row.
func TestDueTargetsScanOneStepPerTarget(t *testing.T) {
	db := testenv.MySQL(t)
	// 40,000 pending deliveries over 50 endpoints.
	if err := db.Exec(`INSERT INTO alert_deliveries (channel, target_id, partner_id, status, attempts, next_attempt_at, created_at)
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
		SELECT 'webhook', (a.i * 200 + b.i) % 50 + 1, 1, ?, 0, ?, ? FROM n a CROSS JOIN n b`,
		delivery.StatusPending, time.Now().Add(-time.Minute), time.Now()).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("ANALYZE TABLE alert_deliveries").Error; err != nil {
		t.Fatal(err)
	}
	var plan []map[string]any
	if err := db.Raw("EXPLAIN "+delivery.DueTargets, delivery.StatusPending, time.Now(), 64).Scan(&plan).Error; err != nil {
		t.Fatal(err)
	}
	if len(plan) == 0 {
		t.Fatal("EXPLAIN gave no plan")
	}
	if extra := fmt.Sprintf("%s", plan[0]["Extra"]); !strings.Contains(extra, "Using index for group-by") {
		t.Fatalf("the due targets are found by reading every pending delivery: %s", extra)
	}
}
