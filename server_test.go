package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/config"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/testenv"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the server as `go run .` would with cfg, waits until it answers,
// and returns its base URL and what it printed.
func start(t *testing.T, cfg config.Config) (string, *testenv.Output) {
	t.Helper()
	cfg.Port = freePort(t)
	out := &testenv.Output{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.NewTextHandler(out, nil)), out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", cfg.Port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return base, out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", out)
		}
	}
}

var partnerKey = regexp.MustCompile(`demo PARTNER key: (ck_\S+)`)

func customerCount(t *testing.T, base, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(`{"query":"{ customers { totalCount } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out struct {
		Data struct{ Customers struct{ TotalCount int } }
	}
	if err := json.Unmarshal(body, &out); err != nil || strings.Contains(string(body), "errors") {
		t.Fatalf("customers: %s", body)
	}
	return out.Data.Customers.TotalCount
}

func TestFirstRunSeedsDemoData(t *testing.T) {
	cfg := config.Config{SQLitePath: filepath.Join(t.TempDir(), "credit.db")}

	base, out := start(t, cfg)
	m := partnerKey.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no demo PARTNER key printed:\n%s", out)
	}
	if n := customerCount(t, base, m[1]); n < 3 {
		t.Fatalf("demo partner has %d customers", n)
	}
	if !regexp.MustCompile(`playground=http://localhost:\d+/`).MatchString(out.String()) {
		t.Fatalf("playground URL not printed:\n%s", out)
	}
}

func TestRestartDoesNotSeedAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credit.db")
	_, first := start(t, config.Config{SQLitePath: path})
	key := partnerKey.FindStringSubmatch(first.String())[1]

	base, again := start(t, config.Config{SQLitePath: path})
	if partnerKey.MatchString(again.String()) {
		t.Fatal("a store with data was seeded again")
	}
	n := customerCount(t, base, key)

	yes := true
	base, forced := start(t, config.Config{SQLitePath: path, Demo: &yes})
	m := partnerKey.FindStringSubmatch(forced.String())
	if m == nil {
		t.Fatal("DEMO=true printed no fresh key")
	}
	if got := customerCount(t, base, m[1]); got != n {
		t.Fatalf("DEMO=true on seeded data: %d customers, had %d", got, n)
	}
}

func TestMySQLIsNotSeededByDefault(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	_, out := start(t, config.Config{MySQLDSN: dsn})
	if partnerKey.MatchString(out.String()) {
		t.Fatal("MySQL was seeded without DEMO=true")
	}
	// Start-up names the store and its schema version.
	if want := fmt.Sprintf("schema_version=%d", database.SchemaVersion()); !strings.Contains(out.String(), `store="MySQL `) || !strings.Contains(out.String(), want) {
		t.Fatalf("start-up does not name the store and %s:\n%s", want, out)
	}
	yes := true
	_, out = start(t, config.Config{MySQLDSN: dsn, Demo: &yes})
	if !partnerKey.MatchString(out.String()) {
		t.Fatal("DEMO=true did not seed MySQL")
	}
}

func TestPortInUseIsAnError(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := config.Config{Port: l.Addr().(*net.TCPAddr).Port, SQLitePath: filepath.Join(t.TempDir(), "credit.db")}
	err = run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d is taken by another program", cfg.Port)) || !strings.Contains(err.Error(), "PORT") {
		t.Fatalf("run on a taken port: %v, want it to name the port and PORT", err)
	}
	// Nothing was seeded, so the next start still shows the demo keys.
	l.Close()
	if _, out := start(t, cfg); !partnerKey.MatchString(out.String()) {
		t.Fatal("the keys of the demo seeded by the failed start are lost")
	}
}

// A store that cannot be opened is named in the error (address and
// database, never the password), so that an operator sees which setting to
// mend.
func TestUnreachableStoreIsNamed(t *testing.T) {
	cfg := config.Config{MySQLDSN: "credit:s3cret@tcp(127.0.0.1:1)/credit", Port: 0}
	err := run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "open the store (MySQL 127.0.0.1:1/credit)") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("run on an unreachable MySQL: %v", err)
	}
}

// `credit reconcile` checks the store the server runs on: clean after the
// demo's activity, exit 1 with the drift named once a balance is tampered with.
func TestReconcileCommand(t *testing.T) {
	cfg := config.Config{SQLitePath: filepath.Join(t.TempDir(), "credit.db")}
	start(t, cfg)
	var out strings.Builder
	if code := reconcileStore(context.Background(), cfg, &out); code != 0 || !strings.Contains(out.String(), "no drift") {
		t.Fatalf("reconcile on the demo store: exit %d\n%s", code, out.String())
	}
	db, err := database.Open(context.Background(), database.Config{SQLitePath: cfg.SQLitePath})
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close(db)
	if err := db.Exec("UPDATE customers SET used = used + 1 WHERE id = 2").Error; err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := reconcileStore(context.Background(), cfg, &out); code != 1 || !strings.Contains(out.String(), "DRIFT: customer 2: used") {
		t.Fatalf("reconcile after tampering: exit %d\n%s", code, out.String())
	}
}

// With MIGRATE=manual the server refuses a database that is behind and says
// what to run; `credit migrate status` lists applied and pending migrations;
// `credit migrate` applies them, and the server then starts.
func TestManualMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credit.db")
	cfg := config.Config{SQLitePath: path, MigrateManually: true}
	var out bytes.Buffer
	if code := migrateStore(context.Background(), cfg, true, &out); code != 0 {
		t.Fatalf("migrate status: exit %d\n%s", code, out.String())
	}
	want := fmt.Sprintf("%d migrations, %d pending", database.SchemaVersion(), database.SchemaVersion())
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "00001_baseline.sql") {
		t.Fatalf("migrate status on a new database:\n%s\nwant %q", out.String(), want)
	}
	err := run(context.Background(), cfg, slog.New(slog.DiscardHandler), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "credit migrate") {
		t.Fatalf("MIGRATE=manual on a database behind: %v", err)
	}
	out.Reset()
	if code := migrateStore(context.Background(), cfg, false, &out); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), ", 0 pending") || !strings.Contains(out.String(), "applied 20") {
		t.Fatalf("after migrate:\n%s", out.String())
	}
	db, err := database.Open(context.Background(), database.Config{SQLitePath: path, Migrations: database.RequireMigrated})
	if err != nil {
		t.Fatalf("MIGRATE=manual on a migrated database: %v", err)
	}
	database.Close(db)
}

func TestStoreIsDescribedWithoutCredentials(t *testing.T) {
	got := describeStore(config.Config{MySQLDSN: "app:s3cret@tcp(db.internal:3306)/credit?parseTime=true"})
	if got != "MySQL db.internal:3306/credit" {
		t.Fatalf("described as %q", got)
	}
}

// --version names the build and the schema version it needs.
func TestVersionText(t *testing.T) {
	got := versionText()
	if want := fmt.Sprintf("(schema version %d, go", database.SchemaVersion()); !strings.HasPrefix(got, "credit ") || !strings.Contains(got, want) {
		t.Fatalf("--version says %q", got)
	}
	version = "v9.9.9"
	defer func() { version = "" }()
	if !strings.HasPrefix(versionText(), "credit v9.9.9 ") {
		t.Fatalf("-X main.version ignored: %q", versionText())
	}
}
