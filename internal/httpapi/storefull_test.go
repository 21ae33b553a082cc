package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/cloudreseller/credit/internal/testenv"
)

// A store with no room left (a full disk; here SQLite's page cap, which fails
// the same way) refuses writes with SERVICE_UNAVAILABLE, saying why, not an
// internal error: nothing was applied, and the same request succeeds once
// there is room. Before, a full tmpfs gave "internal server error".
func TestStoreWithoutRoom(t *testing.T) {
	db := testenv.SQLite(t)
	s, partner, billing, cust := usageSetup(t, db, "100000", false)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	// One connection, so that the cap (a connection's setting) holds for
	// every statement.
	sqlDB.SetMaxOpenConns(1)
	var pages int
	if err := db.Raw("PRAGMA page_count").Scan(&pages).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)).Error; err != nil {
		t.Fatal(err)
	}
	var batch []map[string]any
	for i := range 200 {
		batch = append(batch, event(fmt.Sprint("full-", i), cust, "0.01"))
	}
	r := s.Fails(t, "SERVICE_UNAVAILABLE", billing, recordUsage, map[string]any{"in": map[string]any{"events": batch}})
	if want := "the database has no room left to store this: nothing was applied; try again once it has"; r.Errors[0].Message != want {
		t.Fatalf("message %q, want %q", r.Errors[0].Message, want)
	}
	if c := s.Customer(t, partner, cust); c.Used != "0.00" {
		t.Fatalf("a refused batch was applied: used %s", c.Used)
	}
	if err := db.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages*100)).Error; err != nil {
		t.Fatal(err)
	}
	if got := record(t, s, billing, batch...); got.Accepted != 200 {
		t.Fatalf("with room again: %+v", got)
	}
}
