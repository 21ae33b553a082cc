// Package testenv runs tests against real stores and the real HTTP handler.
//
// Every store test runs on SQLite and on MySQL. MySQL comes from MYSQL_TEST_DSN
// (for example "root@tcp(127.0.0.1:3306)/"); each test gets a database of its
// own, dropped at the end. Without MYSQL_TEST_DSN the MySQL runs are skipped,
// except in CI (CI=true), where that is a failure.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/email"
	"github.com/cloudreseller/credit/internal/alerts/webhook"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/ledger"
)

// AdminToken is the ADMIN_TOKEN of test servers.
const AdminToken = "test-admin-token-0123456789abcdef0123456789"

// Stores runs fn as a subtest on each store: "sqlite" and "mysql".
func Stores(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("mysql", func(t *testing.T) { fn(t, MySQL(t)) })
}

// SQLite opens a new embedded store in a temporary directory.
func SQLite(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := database.Open(context.Background(), database.Config{SQLitePath: filepath.Join(t.TempDir(), "test.db")})
	if err != nil {
		t.Fatalf("open SQLite: %v", err)
	}
	t.Cleanup(func() { database.Close(db) })
	return db
}

// MySQLDSN returns the DSN of a new, empty MySQL database that is dropped when
// the test ends.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("MYSQL_TEST_DSN")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("MYSQL_TEST_DSN is not set: CI must test on MySQL")
		}
		t.Skip("MYSQL_TEST_DSN is not set: skipping MySQL")
	}
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("MYSQL_TEST_DSN: %v", err)
	}
	cfg.DBName = ""
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Ping(); err != nil {
		t.Fatalf("MySQL at MYSQL_TEST_DSN does not answer: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	cfg.DBName = "credit_test_" + hex.EncodeToString(b)
	if _, err := server.Exec("CREATE DATABASE `" + cfg.DBName + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Exec("DROP DATABASE `" + cfg.DBName + "`")
		server.Close()
	})
	return cfg.FormatDSN()
}

// MySQL opens a new MySQL store (see MySQLDSN).
func MySQL(t testing.TB) *gorm.DB {
	t.Helper()
	return OpenMySQL(t, MySQLDSN(t))
}

// KeyRecheckInterval is how often test servers look up the keys of open
// sessions again (to end those another process revoked).
const KeyRecheckInterval = 200 * time.Millisecond

// Server is a running API server process on a test store.
type Server struct {
	*httptest.Server
	DB       *gorm.DB
	Accounts *accounts.Service
	Keys     *keys.Service
	Ledger   *ledger.Ledger
	Alerts   *alerts.Service
	Webhooks *webhook.Service
	// Email is off unless Options.Email names a server.
	Email      *email.Service
	Deliveries *delivery.Service
}

// NewServer serves the real handler on db, with AdminToken as ADMIN_TOKEN, and
// runs its alerts tail. Several servers on one store act as several processes.
func NewServer(t testing.TB, db *gorm.DB) *Server {
	t.Helper()
	return NewServerWith(t, db, httpapi.Services{})
}

// Options are settings of the services NewServerWith makes.
type Options struct {
	Keys     keys.Options
	Alerts   alerts.Options
	Webhooks webhook.Options
	// Deliveries tune retries and polling (short in tests).
	Deliveries delivery.Options
	// Email turns e-mail on when Email.Server is set.
	Email email.Options
	// NoDelivery makes a process that serves the API only
	// (DELIVERY_WORKER=false).
	NoDelivery bool
	// StrictWebhooks keeps webhook endpoints to https and public addresses,
	// as without WEBHOOK_ALLOW_INSECURE and WEBHOOK_ALLOW_PRIVATE; test
	// servers otherwise allow both, since tests receive on loopback.
	StrictWebhooks bool
}

// NewServerWith is NewServer with settings of httpapi.Services (its services
// are made here) and, optionally, of the key and alert services.
func NewServerWith(t testing.TB, db *gorm.DB, settings httpapi.Services, opts ...Options) *Server {
	t.Helper()
	s := &Server{DB: db}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	ko := o.Keys
	if ko.RecheckInterval == 0 {
		ko.RecheckInterval = KeyRecheckInterval
	}
	ko.AdminToken = AdminToken
	s.Keys = keys.New(db, ko)
	wo := o.Webhooks
	if !o.StrictWebhooks {
		wo.AllowInsecure, wo.AllowPrivate = true, true // tests receive on loopback
	}
	s.Deliveries = delivery.New(db, o.Deliveries, nil)
	s.Webhooks = webhook.New(db, s.Deliveries, wo)
	s.Deliveries.Add(s.Webhooks)
	s.Email = email.New(db, s.Deliveries, o.Email)
	if s.Email.Enabled() {
		s.Deliveries.Add(s.Email)
	}
	ao := o.Alerts
	if !o.NoDelivery {
		ao.Deliveries = s.Deliveries
	}
	s.Alerts = alerts.New(db, ao, nil)
	s.Accounts = accounts.New(db, s.Alerts)
	s.Ledger = ledger.New(db, s.Alerts)
	ctx, cancel := context.WithCancel(context.Background())
	done, err := s.Alerts.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watched, delivered := make(chan struct{}), make(chan struct{})
	go func() { defer close(watched); s.Keys.Watch(ctx) }()
	go func() {
		defer close(delivered)
		if !o.NoDelivery {
			s.Deliveries.Run(ctx)
		}
	}()
	settings.DB, settings.Accounts, settings.Keys, settings.Ledger, settings.Alerts, settings.Webhooks = db, s.Accounts, s.Keys, s.Ledger, s.Alerts, s.Webhooks
	settings.Email, settings.Deliveries = s.Email, s.Deliveries
	s.Server = httptest.NewUnstartedServer(httpapi.New(settings))
	s.Start()
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
		cancel()
		<-done
		<-watched
		<-delivered
	})
	return s
}

// Error is one GraphQL error of a response.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the error's extensions.code.
func (e Error) Code() string {
	s, _ := e.Extensions["code"].(string)
	return s
}

// Response is a GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
}

// Codes lists the codes of the response's errors.
func (r Response) Codes() []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Code())
	}
	return out
}

// Post sends a GraphQL operation with a bearer key ("" for none).
func (s *Server) Post(t testing.TB, key, query string, vars map[string]any) Response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return s.PostRaw(t, key, body)
}

// PostRaw sends a raw request body to /graphql.
func (s *Server) PostRaw(t testing.TB, key string, body []byte) Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not JSON (%d): %s", res.StatusCode, raw)
	}
	out.Status = res.StatusCode
	return out
}

// Must sends an operation and fails the test on any error; it decodes data into
// dest (when not nil).
func (s *Server) Must(t testing.TB, key, query string, vars map[string]any, dest any) {
	t.Helper()
	r := s.Post(t, key, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	if dest != nil {
		if err := json.Unmarshal(r.Data, dest); err != nil {
			t.Fatalf("decode %s: %v", r.Data, err)
		}
	}
}

// Fails sends an operation and checks that it fails with the code, returning the
// response.
func (s *Server) Fails(t testing.TB, code, key, query string, vars map[string]any) Response {
	t.Helper()
	r := s.Post(t, key, query, vars)
	if len(r.Errors) == 0 {
		t.Fatalf("want error %s, got data %s", code, r.Data)
	}
	for _, e := range r.Errors {
		if e.Code() != code {
			t.Fatalf("want error %s, got %+v", code, r.Errors)
		}
	}
	return r
}

// StatementTimeout bounds each MySQL round trip of a test store. It is
// longer than the server's default (database.DefaultStatementTimeout): test
// binaries run side by side, each creating, migrating and dropping
// databases, and on a loaded machine round trips have been seen to take more
// than 1.5 s (a migration's read of the schema version once more than 10 s),
// which failed tests that are not about outages (those start a database
// server of their own and keep the default).
const StatementTimeout = 30 * time.Second

// OpenMySQL opens another connection pool on a MySQL database made by MySQLDSN,
// as a second server process would.
func OpenMySQL(t testing.TB, dsn string) *gorm.DB {
	t.Helper()
	db, err := database.Open(context.Background(), database.Config{MySQLDSN: dsn, StatementTimeout: StatementTimeout})
	if err != nil {
		t.Fatalf("open MySQL: %v", err)
	}
	t.Cleanup(func() { database.Close(db) })
	return db
}
