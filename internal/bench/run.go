package bench

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/cloudreseller/credit/internal/database"
)

// Run seeds the stores, starts a server process, measures every workload
// and prints the table.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	env, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.close()
	fmt.Fprintf(cfg.Out, "credit benchmark, %s, %s on %s, %d cores; %d rounds of %v each, median\n",
		time.Now().UTC().Format("2006-01-02"), env.store, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), cfg.Rounds, cfg.Duration)
	if err := env.seed(ctx); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	rows, err := env.throughput(ctx, cfg)
	if err != nil {
		return err
	}
	if len(rows) > 0 {
		printTable(cfg.Out, "Throughput at 1,000 customers of 4 partners (server vs the same work in plain database/sql)", rows)
	}
	if cfg.wants("alert cost") {
		cost, err := env.alertCost(ctx, cfg)
		if err != nil {
			return fmt.Errorf("alert cost: %w", err)
		}
		printTable(cfg.Out, "What raising alerts costs (both columns through the server)", []row{cost})
	}
	if cfg.wants("delivery cost") {
		none, with, err := env.deliveryCost(ctx, cfg)
		if err != nil {
			return fmt.Errorf("delivery cost: %w", err)
		}
		printCost(cfg.Out, env.alertRate, none, with)
	}
	if cfg.wants("delivery") {
		rows, lat, err := env.delivery(ctx, cfg)
		if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
		printColumns(cfg.Out, fmt.Sprintf("Writes while alerts are delivered to webhook endpoints (half answer at once, a quarter fail, a quarter take 2 s; %d alert-raising changes a second beside each workload): with endpoints vs with none, same run; rates are medians, the ratio is the median of each run against the run just before it, with their range", env.alertRate),
			"with endpoints", "none", rows)
		printLatencies(cfg.Out, "From an alert to its webhook, during those measurements", []latencyRow{lat})
	}
	if cfg.wants("delivery storm") {
		s, err := env.deliveryStorm(ctx, cfg)
		if err != nil {
			return fmt.Errorf("delivery storm: %w", err)
		}
		printStorm(cfg.Out, s)
	}
	if cfg.Short {
		return nil
	}
	// Listeners last: closing 20,000 connections leaves work behind that would
	// show in the latencies measured after it.
	defer func() {
		if err == nil && cfg.wants("listeners") {
			var rows []listenerRow
			if rows, err = env.listeners(ctx); err != nil {
				err = fmt.Errorf("listeners: %w", err)
				return
			}
			printListeners(cfg.Out, rows)
		}
	}()
	if !cfg.wants("dashboard") && !cfg.wants("records") && !cfg.wants("forecast") {
		return nil
	}
	key, partnerID, err := env.seedBig(ctx)
	if err != nil {
		return fmt.Errorf("seed %d customers: %w", bigPartner, err)
	}
	if cfg.wants("dashboard") {
		latencies, err := env.dashboard(ctx, key, partnerID)
		if err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		printLatencies(cfg.Out, fmt.Sprintf("A dashboard of one partner's %d customers: customers(first: 50), one request at a time", bigPartner), latencies)
	}
	if cfg.wants("records") {
		latencies, err := env.records(ctx, key, partnerID)
		if err != nil {
			return fmt.Errorf("records: %w", err)
		}
		printLatencies(cfg.Out, fmt.Sprintf("Records of that partner: %d allocation records and %d alerts, first: 50, one request at a time", bigAllocations, bigAlerts), latencies)
	}
	if cfg.wants("forecast") {
		latencies, err := env.forecast(ctx, key, partnerID)
		if err != nil {
			return fmt.Errorf("forecast: %w", err)
		}
		printLatencies(cfg.Out, "The depletion forecast of a customer of that partner, one request at a time, and the same week summed over its events in the same run", latencies)
	}
	return nil
}

// wants tells whether a section runs: every one unless -only names another.
func (cfg Config) wants(section string) bool {
	return cfg.Only == "" || strings.Contains(section, cfg.Only)
}

// serverDB is a plain pool on the server's own database.
func (e *env) serverDB() *sql.DB { return e.srvDB }

// env is a benchmark's stores and server.
type env struct {
	store  string
	server *exec.Cmd
	url    string
	admin  string
	raw    *sql.DB // the scratch schema, for the raw workloads
	srvDB  *sql.DB // the server's schema, read to seed the scratch one
	http   *http.Client
	sqlite bool
	// sqlitePath is the server's database file on SQLite.
	sqlitePath string
	// round numbers the measurement rounds, so that event ids stay unique.
	round int
	// bigFirstID is the first customer id of the dashboard's partner.
	bigFirstID int64
	// drop removes the run's databases (MySQL).
	drop func()
	// pprof is the server's profile address, when profiles are asked for.
	pprof string
	// swung are the customers the alert source swings, once made.
	swung []customer
	// swing counts the alert source's changes (raiseAlerts); alertRate is
	// how many it makes a second.
	swing     int
	alertRate int

	partnerKeys []string // by partner index
	partnerIDs  []string
	billingKey  string
	customers   []customer
}

type customer struct {
	id        int64
	partner   int // index into partnerKeys
	partnerID int64
}

func prepare(ctx context.Context, cfg Config) (e *env, err error) {
	e = &env{admin: randomToken(), alertRate: cmp.Or(cfg.AlertRate, DefaultAlertRate), http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256},
	}}
	var serverStore string
	switch {
	case cfg.MySQLDSN != "":
		base, err := mysqldriver.ParseDSN(cfg.MySQLDSN)
		if err != nil {
			return nil, err
		}
		// Databases of this run's own, dropped at the end: runs side by side
		// (a developer's and CI's) do not meet.
		suffix := randomToken()[:8]
		srvName, rawName := "credit_bench_"+suffix, "credit_bench_raw_"+suffix
		if err := recreate(base, srvName, rawName); err != nil {
			return nil, err
		}
		e.drop = func() { drop(base, srvName, rawName) }
		e.store = "MySQL " + base.Addr
		serverStore = "MYSQL_DSN=" + withDB(base, srvName)
		if e.raw, err = openRaw(ctx, database.Config{MySQLDSN: withDB(base, rawName)}); err != nil {
			return nil, err
		}
		if e.srvDB, err = sql.Open("mysql", withDB(base, srvName)+"?parseTime=true"); err != nil {
			return nil, err
		}
	default:
		e.sqlite = true
		e.store = "SQLite"
		os.Remove(cfg.SQLiteDir + "/bench.db")
		os.Remove(cfg.SQLiteDir + "/bench_raw.db")
		e.sqlitePath = cfg.SQLiteDir + "/bench.db"
		serverStore = "SQLITE_PATH=" + e.sqlitePath
		if e.raw, err = openRaw(ctx, database.Config{SQLitePath: cfg.SQLiteDir + "/bench_raw.db"}); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e.url = "http://127.0.0.1:" + port
	e.server = exec.Command(cfg.Server)
	e.server.Env = append(os.Environ(), serverStore, "PORT="+port, "ADMIN_TOKEN="+e.admin, "DEMO=false",
		"WEBHOOK_ALLOW_INSECURE=true", "WEBHOOK_ALLOW_PRIVATE=true") // the delivery section's receiver is on loopback
	if cfg.ProfileDir != "" {
		pprofPort, err := freePort()
		if err != nil {
			return nil, err
		}
		e.pprof = "http://127.0.0.1:" + pprofPort
		e.server.Env = append(e.server.Env, "PPROF_ADDR=127.0.0.1:"+pprofPort)
	}
	var logs bytes.Buffer
	e.server.Stdout, e.server.Stderr = &logs, &logs
	if err := e.server.Start(); err != nil {
		return nil, err
	}
	if e.sqlite {
		// The server's file exists once it is ready; WAL lets this pool read
		// and write beside it.
		defer func() {
			if e.srvDB == nil && err == nil {
				e.srvDB, err = sql.Open("sqlite", "file:"+e.sqlitePath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
			}
		}()
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get(e.url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			e.close()
			return nil, fmt.Errorf("the server did not start:\n%s", logs.String())
		}
	}
	return e, nil
}

// openRaw makes the scratch schema (the server's own migrations, so that the
// raw work runs on the same tables and indexes) and returns a plain pool.
func openRaw(ctx context.Context, cfg database.Config) (*sql.DB, error) {
	db, err := database.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(64)
	sqlDB.SetMaxIdleConns(64)
	return sqlDB, nil
}

func (e *env) close() {
	if e.server != nil && e.server.Process != nil {
		e.server.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { e.server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			e.server.Process.Kill()
		}
	}
	if e.raw != nil {
		e.raw.Close()
	}
	if e.srvDB != nil {
		e.srvDB.Close()
	}
	if e.drop != nil {
		e.drop()
	}
}

func drop(base *mysqldriver.Config, names ...string) {
	server := *base
	server.DBName = ""
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return
	}
	defer db.Close()
	for _, n := range names {
		db.Exec("DROP DATABASE IF EXISTS `" + n + "`")
	}
}

func recreate(base *mysqldriver.Config, names ...string) error {
	server := *base
	server.DBName = ""
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, n := range names {
		if _, err := db.Exec("DROP DATABASE IF EXISTS `" + n + "`"); err != nil {
			return err
		}
		if _, err := db.Exec("CREATE DATABASE `" + n + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
			return err
		}
	}
	return nil
}

func withDB(base *mysqldriver.Config, name string) string {
	c := *base
	c.DBName = name
	c.Params = nil
	return c.FormatDSN()
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// gql sends one GraphQL operation and fails on any error in the answer.
func (e *env) gql(ctx context.Context, key, query string, vars map[string]any, dest any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var out struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("HTTP %d: %.200s", res.StatusCode, raw)
	}
	if len(out.Errors) > 0 {
		return errors.New(out.Errors[0].Message)
	}
	if dest != nil {
		return json.Unmarshal(out.Data, dest)
	}
	return nil
}
