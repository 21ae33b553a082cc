// Command credit serves the credit allocation API for cloud resellers.
//
// Configuration comes from the environment (flags mirror it); see README.md.
// `credit reconcile` verifies the store instead of serving it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/cloudreseller/credit/graph"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/email"
	"github.com/cloudreseller/credit/internal/alerts/webhook"
	"github.com/cloudreseller/credit/internal/bench"
	"github.com/cloudreseller/credit/internal/config"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/demo"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/ledger"
	"github.com/cloudreseller/credit/internal/metrics"
	"github.com/cloudreseller/credit/internal/playground"
	"github.com/cloudreseller/credit/internal/reconcile"
)

// version is the build's version: set with -ldflags "-X main.version=v1.2.3",
// or else read from the module's build information.
var version string

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

// versionText is what --version prints.
func versionText() string {
	return fmt.Sprintf("credit %s (schema version %d, %s)", buildVersion(), database.SchemaVersion(), runtime.Version())
}

func main() {
	args, command := os.Args[1:], "serve"
	if len(args) > 0 && args[0] == "bench" {
		os.Exit(benchmark(args[1:]))
	}
	if len(args) > 0 && args[0] == "schema" {
		// credit schema: the GraphQL schema, as schema.graphql holds it.
		os.Stdout.Write(graph.SDL())
		os.Exit(0)
	}
	var sub []string
	if len(args) > 0 && args[0] == "migrate" {
		// credit migrate [status] [flags]
		args, command = args[1:], "migrate"
		if len(args) > 0 && args[0] == "status" {
			args, sub = args[1:], []string{"status"}
		}
	}
	if len(args) > 0 && args[0] == "reconcile" {
		args, command = args[1:], args[0]
	}
	for _, a := range args {
		if a == "--version" || a == "-version" {
			fmt.Println(versionText())
			os.Exit(0)
		}
	}
	cfg, err := config.Load("credit", args, os.Getenv, os.Stderr)
	if errors.Is(err, config.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "credit: configuration:", err)
		os.Exit(2)
	}
	log := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if command == "reconcile" {
		os.Exit(reconcileStore(ctx, cfg, os.Stdout))
	}
	if command == "migrate" {
		os.Exit(migrateStore(ctx, cfg, len(sub) > 0, os.Stdout))
	}
	tuneGC(os.Getenv)
	if err := run(ctx, cfg, log, os.Stdout); err != nil {
		log.Error("server stopped", "err", err)
		os.Exit(1)
	}
}

// newLogger returns the logger LOG_FORMAT and LOG_LEVEL ask for.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// storeConfig is the store's part of the configuration.
func storeConfig(cfg config.Config) database.Config {
	mode := database.MigrateAtOpen
	if cfg.MigrateManually {
		mode = database.RequireMigrated
	}
	return database.Config{MySQLDSN: cfg.MySQLDSN, SQLitePath: cfg.SQLitePath, Migrations: mode}
}

// Garbage collector defaults of the server, unless GOGC or GOMEMLIMIT say
// otherwise. The live heap of a serving process is small (a few MiB without
// listeners), so Go's default GOGC=100 collects after every few MiB
// allocated: a fifth of the CPU of a page of customers was the collector
// (go run . bench -profile). Collecting at 4× the live heap, under a soft
// limit that makes it collect sooner when the heap gets big (10,000
// listeners), gave a page 20 % more throughput.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 900 << 20
)

func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// benchmark runs `credit bench`: the server against plain database/sql (see
// internal/bench).
func benchmark(args []string) int {
	cfg := bench.Config{Out: os.Stdout}
	fs := flag.NewFlagSet("credit bench", flag.ContinueOnError)
	fs.StringVar(&cfg.MySQLDSN, "mysql-dsn", envOr("MYSQL_BENCH_DSN", "root@tcp(127.0.0.1:3306)/"), "MySQL server to run on (MYSQL_BENCH_DSN); the run makes databases of its own there and drops them")
	sqlite := fs.Bool("sqlite", false, "run on SQLite files in a temporary directory instead of MySQL")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "length of one measurement")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "server/raw pairs per workload (the median is shown)")
	fs.BoolVar(&cfg.Short, "short", false, "a quick run for CI: 1 round of 1 s, figures only")
	fs.StringVar(&cfg.ProfileDir, "profile", "", "write the server's CPU profile during each workload's first measurement to this directory (<workload>.pprof)")
	fs.IntVar(&cfg.AlertRate, "alert-rate", bench.DefaultAlertRate, "alert-raising changes a second beside the workloads of the delivery sections (each alert goes to every endpoint of its partner)")
	fs.StringVar(&cfg.Only, "only", "", "run only the workloads and sections whose name contains this (customer(id), alert cost, dashboard, …)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.AlertRate < 1 || cfg.AlertRate > 1000 {
		fmt.Fprintln(os.Stderr, "credit bench: -alert-rate must be from 1 to 1000")
		return 2
	}
	if cfg.Short {
		cfg.Duration, cfg.Rounds = time.Second, 1
	}
	if *sqlite {
		dir, err := os.MkdirTemp("", "credit-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer os.RemoveAll(dir)
		cfg.MySQLDSN, cfg.SQLiteDir = "", dir
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.Server = exe
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// reconcileStore verifies the whole store and prints what it checked and every
// drift. It returns the exit code: 0 clean, 1 drift, 2 the check could not run.
func reconcileStore(ctx context.Context, cfg config.Config, out io.Writer) int {
	db, err := database.Open(ctx, storeConfig(cfg))
	if err != nil {
		fmt.Fprintln(out, "reconcile: open the store:", err)
		return 2
	}
	defer database.Close(db)
	report, err := reconcile.Run(ctx, db)
	if err != nil {
		fmt.Fprintln(out, "reconcile:", err)
		return 2
	}
	report.Print(out)
	if !report.Clean() {
		return 1
	}
	return 0
}

// describeStore names the store for the logs: the SQLite file, or MySQL's
// address and database, never its user or password.
func describeStore(cfg config.Config) string {
	if cfg.MySQLDSN == "" {
		return "SQLite " + cfg.SQLitePath
	}
	c, err := mysqldriver.ParseDSN(cfg.MySQLDSN)
	if err != nil {
		return "MySQL"
	}
	return "MySQL " + c.Addr + "/" + c.DBName
}

// migrateStore applies pending migrations (`credit migrate`), or with status
// lists every migration as applied or pending (`credit migrate status`).
func migrateStore(ctx context.Context, cfg config.Config, status bool, out io.Writer) int {
	store := storeConfig(cfg)
	store.Migrations = database.LeaveSchema
	db, err := database.Open(ctx, store)
	if err != nil {
		fmt.Fprintln(out, "migrate: open the store:", err)
		return 2
	}
	defer database.Close(db)
	if !status {
		if err := database.Migrate(ctx, db); err != nil {
			fmt.Fprintln(out, "migrate:", err)
			return 1
		}
	}
	migrations, err := database.Status(ctx, db)
	if err != nil {
		fmt.Fprintln(out, "migrate status:", err)
		return 2
	}
	pending := 0
	for _, m := range migrations {
		state := "pending"
		if m.Applied {
			state = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
		} else {
			pending++
		}
		fmt.Fprintf(out, "%05d  %-45s  %s\n", m.Version, m.File, state)
	}
	fmt.Fprintf(out, "%d migrations, %d pending; this build needs version %d\n", len(migrations), pending, database.SchemaVersion())
	return 0
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// deliveryChannels makes the delivery service and its channels: webhooks,
// and e-mail when SMTP_URL is set (it says at start which).
func deliveryChannels(db *gorm.DB, cfg config.Config, log *slog.Logger) (*delivery.Service, *webhook.Service, *email.Service) {
	const mailTimeout = 30 * time.Second
	// A lease outlasts the attempts it covers (PerTarget of them, one after
	// another) at the slowest channel's timeout.
	slowest := cfg.WebhookTimeout
	if cfg.SMTPURL != nil {
		slowest = max(slowest, mailTimeout)
	}
	deliveries := delivery.New(db, delivery.Options{Retries: cfg.WebhookRetries, Lease: (delivery.DefaultPerTarget + 1) * slowest,
		MaxRate: float64(cfg.DeliveryMaxRate)}, log)
	hooks := webhook.New(db, deliveries, webhook.Options{AllowInsecure: cfg.WebhookAllowInsecure, AllowPrivate: cfg.WebhookAllowPrivate,
		Timeout: cfg.WebhookTimeout})
	deliveries.Add(hooks)
	mail := email.New(db, deliveries, email.Options{Server: cfg.SMTPURL, From: cfg.SMTPFrom, Link: cfg.AlertLink, Playground: cfg.PublicURL, Timeout: mailTimeout})
	if !mail.Enabled() {
		log.Info("e-mail is off: alerts are not e-mailed until SMTP_URL is set")
		return deliveries, hooks, mail
	}
	deliveries.Add(mail)
	log.Info("e-mail is on", "smtp_host", cfg.SMTPURL.Host, "from", cfg.SMTPFrom)
	return deliveries, hooks, mail
}

// run serves until ctx ends. Demo keys, when made, are printed to out: the
// standard output, apart from the log (stderr), so that no key reaches a log
// pipeline.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) error {
	db, err := database.Open(ctx, storeConfig(cfg))
	if err != nil {
		return fmt.Errorf("open the store (%s): %w", describeStore(cfg), err)
	}
	defer database.Close(db)
	schema, err := database.CurrentVersion(ctx, db)
	if err != nil {
		return err
	}
	log.Info("store ready", "store", describeStore(cfg), "schema_version", schema, "version", buildVersion())

	// Take the port before seeding: demo keys are shown once, and a server that
	// then fails to listen would have shown them for nothing.
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", cfg.Port))
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("port %d is taken by another program (another server still running?): stop it, or start this one with PORT set to a free port: %w", cfg.Port, err)
	}
	if err != nil {
		return err
	}
	defer ln.Close()

	deliveries, hooks, mail := deliveryChannels(db, cfg, log)
	ao := alerts.Options{ForecastWindow: cfg.ForecastWindow}
	if cfg.DeliveryWorker {
		ao.Deliveries = deliveries
	} else {
		log.Info("deliveries are off in this process (DELIVERY_WORKER=false): another process must queue and attempt them")
	}
	alertSvc := alerts.New(db, ao, log)
	acc := accounts.New(db, alertSvc)
	ks := keys.New(db, keys.Options{AdminToken: cfg.AdminToken, Logger: log})
	led := ledger.New(db, alertSvc)
	if err := seedDemo(ctx, cfg, acc, ks, led, log, out); err != nil {
		return err
	}

	// The alert tail and the key watcher run until the server has drained.
	background, stopBackground := context.WithCancel(context.Background())
	tailDone, err := alertSvc.Start(background)
	if err != nil {
		stopBackground()
		return err
	}
	watchDone, hooksDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(watchDone); ks.Watch(background) }()
	go func() {
		defer close(hooksDone)
		if cfg.DeliveryWorker {
			deliveries.Run(background)
		}
	}()
	defer func() { stopBackground(); <-tailDone; <-watchDone; <-hooksDone }()

	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	m := metrics.New(metrics.Sources{DB: sqlDB, Alerts: alertSvc, Ledger: led, Deliveries: deliveries, Version: buildVersion(), SchemaVersion: schema, Logger: log})
	srv := &http.Server{
		Handler: httpapi.New(httpapi.Services{DB: db, Accounts: acc, Keys: ks, Ledger: led, Alerts: alertSvc, Webhooks: hooks, Email: mail, Deliveries: deliveries, Logger: log,
			Metrics: m, MetricsToken: cfg.MetricsToken, PlaygroundCDN: cfg.PlaygroundCDN}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// Shutdown stops accepting and waits for requests in flight, but not for
	// hijacked WebSocket connections nor for event streams, which never end by
	// themselves: end every session (close code 1001, a SHUTTING_DOWN error on
	// streams) so that clients reconnect elsewhere.
	srv.RegisterOnShutdown(func() {
		ks.Sessions.EndAll(errs.E(errs.ShuttingDown, "the server is shutting down: reconnect"))
	})
	return serve(ctx, srv, ln, log, cfg.ShutdownTimeout)
}

// servePprof serves Go's profiles on addr (PPROF_ADDR, for example
// 127.0.0.1:6060), apart from the API: for operators, never exposed by default.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("profiles served", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Warn("profiles not served", "err", err)
	}
}

// serve runs srv on ln until ctx ends, then shuts it down gracefully: requests
// in flight finish (a mutation running at SIGTERM commits and answers); what
// is still open after the timeout is cut.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	port := ln.Addr().(*net.TCPAddr).Port
	playgroundFiles := "embedded"
	if !playground.Built() {
		playgroundFiles = "from the public CDN (this build does not embed GraphiQL: go generate ./internal/playground)"
	}
	log.Info("listening", "port", port, "playground_files", playgroundFiles, "playground", fmt.Sprintf("http://localhost:%d/", port), "graphql", fmt.Sprintf("http://localhost:%d/graphql", port))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests in flight")
	shutdown, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(shutdown)
	cancelBase() // whatever is left (sockets that never signed in)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown: requests still running were cut", "after", timeout)
		return nil
	}
	return err
}

// DefaultShutdownTimeout bounds how long a shutdown waits for requests in
// flight, unless SHUTDOWN_TIMEOUT says otherwise.
const DefaultShutdownTimeout = 8 * time.Second

// seedDemo seeds demo data when DEMO says so, or by default on a new, empty
// embedded store, and prints the demo keys.
func seedDemo(ctx context.Context, cfg config.Config, acc *accounts.Service, ks *keys.Service, led *ledger.Ledger, log *slog.Logger, out io.Writer) error {
	want := cfg.Demo != nil && *cfg.Demo
	if cfg.Demo == nil && cfg.MySQLDSN == "" {
		empty, err := acc.IsEmpty(ctx)
		if err != nil {
			return err
		}
		want = empty
	}
	if !want {
		return nil
	}
	demoKeys, err := demo.Ensure(ctx, acc, ks, led)
	if err != nil {
		return err
	}
	log.Info("demo data ready: partner " + demo.PartnerName + "; these keys are shown only now")
	fmt.Fprintf(out, "\n  demo PARTNER key: %s\n  demo BILLING key: %s\n\n  In the playground's Headers tab: {\"Authorization\": \"Bearer %s\"}\n\n",
		demoKeys.Partner, demoKeys.Billing, demoKeys.Partner)
	return nil
}
