package database_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/testenv"
)

// release1Rows is data as the first release wrote it.
var release1Rows = []string{
	"INSERT INTO partners (id, name, currency, credit_line, allocated, created_at) VALUES (1, 'P', 'USD', 100000, 5000, '2026-01-01 00:00:00')",
	"INSERT INTO customers (id, partner_id, name, credit, used, available, usage_basis_points, status, created_at) VALUES (1, 1, 'C', 5000, 4000, 1000, 8000, 'ACTIVE', '2026-01-01 00:00:00')",
	"INSERT INTO api_keys (id, name, role, partner_id, hash, created_at) VALUES (1, 'k', 'PARTNER', 1, 'ab12', '2026-01-01 00:00:00')",
	"INSERT INTO credit_allocations (id, partner_id, customer_id, kind, amount, credit_before, credit_after, available_after, operator, api_key_id, idempotency_key, request_hash, created_at) VALUES (1, 1, 1, 'ALLOCATE', 5000, 0, 5000, 5000, 'k', 1, 'Az3', 'h', '2026-01-01 00:00:01')",
	"INSERT INTO usage_events (id, event_id, partner_id, customer_id, amount, occurred_at, created_at) VALUES (1, 'INV-1', 1, 1, 4000, '2026-01-02 00:00:00', '2026-01-02 00:00:00')",
	"INSERT INTO alerts (id, partner_id, customer_id, threshold, usage_basis_points, used, credit, available, created_at) VALUES (1, 1, 1, 75, 8000, 4000, 5000, 1000, '2026-01-02 00:00:00')",
	"INSERT INTO alert_sequences (id, last_id) VALUES (1, 1)",
}

// A database that the first release created (GORM AutoMigrate, no version
// table) is adopted at start: its data stays, identifiers then compare byte
// for byte, and the new constraints hold.
func TestRelease1DatabaseIsAdopted(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "old.db")
		raw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		loadRelease1(t, raw, "testdata/release1_sqlite.sql")
		raw.Close()
		db, err := database.Open(context.Background(), database.Config{SQLitePath: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { database.Close(db) })
		checkAdopted(t, db)
	})
	t.Run("mysql", func(t *testing.T) {
		dsn := testenv.MySQLDSN(t)
		raw, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		loadRelease1(t, raw, "testdata/release1_mysql.sql")
		checkAdopted(t, testenv.OpenMySQL(t, dsn))
	})
}

func loadRelease1(t *testing.T, raw *sql.DB, schema string) {
	t.Helper()
	ddl, err := os.ReadFile(schema)
	if err != nil {
		t.Fatal(err)
	}
	stmts := strings.Split(string(ddl), ";\n")
	for _, s := range append(stmts, release1Rows...) {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func checkAdopted(t *testing.T, db *gorm.DB) {
	t.Helper()
	for table, want := range map[string]int64{"partners": 1, "customers": 1, "api_keys": 1, "credit_allocations": 1, "usage_events": 1, "alerts": 1} {
		var n int64
		if err := db.Table(table).Count(&n).Error; err != nil || n != want {
			t.Fatalf("%s: %d rows (%v), want %d", table, n, err, want)
		}
	}
	var counters struct{ AllocationRecords, WithdrawRecords int64 }
	if err := db.Raw("SELECT allocation_records, withdraw_records FROM partners WHERE id = 1").Scan(&counters).Error; err != nil ||
		counters.AllocationRecords != 1 || counters.WithdrawRecords != 0 {
		t.Fatalf("the partner's record counters after migration: %+v %v", counters, err)
	}
	// Usage kept by hour starts with the usage recorded before.
	var hours []struct{ CustomerID, Hour, Amount int64 }
	if err := db.Raw("SELECT customer_id, hour, amount FROM usage_hours").Scan(&hours).Error; err != nil || len(hours) != 1 ||
		hours[0].CustomerID != 1 || hours[0].Hour != time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix()/3600 || hours[0].Amount != 4000 {
		t.Fatalf("usage by hour after migration: %+v %v", hours, err)
	}
	var key string
	if err := db.Raw("SELECT idempotency_key FROM credit_allocations WHERE id = 1").Scan(&key).Error; err != nil || key != "Az3" {
		t.Fatalf("idempotency key after migration: %q %v", key, err)
	}
	// Identity is exact now: these were "the same" under the old collation.
	for _, q := range []string{
		"SELECT COUNT(*) FROM usage_events WHERE event_id = 'inv-1'",
		"SELECT COUNT(*) FROM usage_events WHERE event_id = 'INV-1 '",
		"SELECT COUNT(*) FROM credit_allocations WHERE idempotency_key = 'aZ3'",
		"SELECT COUNT(*) FROM api_keys WHERE hash = 'AB12'",
	} {
		var n int64
		if err := db.Raw(q).Scan(&n).Error; err != nil || n != 0 {
			t.Errorf("%s: %d (%v), want 0", q, n, err)
		}
	}
	if err := db.Exec("INSERT INTO usage_events (event_id, partner_id, customer_id, amount, occurred_at, created_at) VALUES ('inv-1', 1, 1, 1, '2026-01-03 00:00:00', '2026-01-03 00:00:00')").Error; err != nil {
		t.Fatalf("an event id differing only in case is a new event: %v", err)
	}
	// The database refuses broken balances and dangling rows by itself.
	for _, bad := range []string{
		"UPDATE customers SET credit = -1 WHERE id = 1",
		"UPDATE customers SET used = -5 WHERE id = 1",
		"UPDATE partners SET allocated = credit_line + 1 WHERE id = 1",
		"INSERT INTO usage_events (event_id, partner_id, customer_id, amount, occurred_at, created_at) VALUES ('e-9', 1, 999, 1, '2026-01-03 00:00:00', '2026-01-03 00:00:00')",
		"INSERT INTO usage_events (event_id, partner_id, customer_id, amount, occurred_at, created_at) VALUES ('e-10', 1, 1, 0, '2026-01-03 00:00:00', '2026-01-03 00:00:00')",
		// Alerts enter through the outbox, which checks their customer.
		"INSERT INTO raised_alerts (partner_id, customer_id, threshold, usage_basis_points, used, credit, available, created_at) VALUES (1, 9, 75, 1, 1, 1, 1, '2026-01-03 00:00:00')",
		"INSERT INTO credit_allocations (partner_id, customer_id, kind, amount, credit_before, credit_after, available_after, operator, created_at) VALUES (1, 1, 'ALLOCATE', 5, 0, 6, 6, 'x', '2026-01-03 00:00:00')",
	} {
		if err := db.Exec(bad).Error; err == nil {
			t.Errorf("the database accepted: %s", bad)
		}
	}
}

// A database migrated past what this build knows is refused at start.
func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db, err := database.Open(context.Background(), database.Config{SQLitePath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, true)", database.SchemaVersion()+1).Error; err != nil {
		t.Fatal(err)
	}
	database.Close(db)
	_, err = database.Open(context.Background(), database.Config{SQLitePath: path})
	if err == nil || !strings.Contains(err.Error(), "newer than this build knows") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

// Every MySQL connection of the pool reads committed data: transactions lock a
// row and then read it, and must see the latest commit.
func TestMySQLConnectionsReadCommitted(t *testing.T) {
	db := testenv.MySQL(t)
	sqlDB, _ := db.DB()
	var conns []*sql.Conn
	for range 3 {
		c, err := sqlDB.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var level string
		if err := c.QueryRowContext(context.Background(), "SELECT @@tx_isolation").Scan(&level); err != nil {
			if err := c.QueryRowContext(context.Background(), "SELECT @@transaction_isolation").Scan(&level); err != nil {
				t.Fatal(err)
			}
		}
		if level != "READ-COMMITTED" {
			t.Fatalf("a connection runs at %s", level)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}
