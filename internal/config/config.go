// Package config reads the server's settings from the environment and the
// command line. Every setting has an environment variable and a flag (the
// flag wins); --help lists them with their defaults; a value that does not
// parse stops the server at start with a message naming the setting.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/cloudreseller/credit/internal/alerts/email"
)

// Config is the server's configuration.
type Config struct {
	Port       int
	MySQLDSN   string
	SQLitePath string
	AdminToken string
	// Demo is nil when DEMO is unset: seed only a new, empty embedded store.
	Demo *bool
	// MigrateManually: MIGRATE=manual refuses to start until `credit
	// migrate` has applied the migrations; MIGRATE=auto applies them at start.
	MigrateManually bool
	LogFormat       string // text or json
	LogLevel        slog.Level
	// MetricsToken, when set, is the bearer token GET /metrics requires.
	MetricsToken string
	// PprofAddr, when set, serves Go's profiles on this address.
	PprofAddr string
	// ShutdownTimeout bounds how long a shutdown waits for requests in flight.
	ShutdownTimeout time.Duration
	// PlaygroundCDN serves the playground page that loads GraphiQL from its
	// public CDN even when the build embeds it.
	PlaygroundCDN bool
	// ForecastWindow is the trailing window of usage depletion forecasts
	// take the burn rate over.
	ForecastWindow time.Duration
	// WebhookAllowInsecure and WebhookAllowPrivate relax the safety checks
	// of webhook endpoints (http; loopback and private addresses).
	WebhookAllowInsecure, WebhookAllowPrivate bool
	// WebhookTimeout bounds one delivery attempt; WebhookRetries are the
	// pauses before each retry (nil: the default schedule).
	WebhookTimeout time.Duration
	WebhookRetries []time.Duration
	// DeliveryMaxRate bounds the delivery attempts this process makes a
	// second, webhooks and e-mails together.
	DeliveryMaxRate int
	// DeliveryWorker runs deliveries in this process; off, it serves the
	// API only and other processes deliver.
	DeliveryWorker bool
	// SMTPURL, when set, turns e-mail on: alerts are sent through this
	// server (smtp://user:pass@host:587, STARTTLS when offered; smtps://).
	SMTPURL *url.URL
	// SMTPFrom is the sender of e-mails.
	SMTPFrom string
	// AlertLink is the link e-mails give to see a customer ({id} is its id);
	// empty: the playground.
	AlertLink string
	// PublicURL is where people reach this server (its playground), for the
	// links of alert e-mails: http://localhost:Port unless set.
	PublicURL string
}

// setting is one configuration item: its variable, flag, default and how it
// is read into a Config.
type setting struct {
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

var settings = []setting{
	{"PORT", "port", "8080", "HTTP port of the API, the playground, /metrics and the health checks", func(c *Config, v string) error {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return errors.New("must be a port number from 0 to 65535")
		}
		c.Port = p
		return nil
	}},
	{"MYSQL_DSN", "mysql-dsn", "", "MySQL to use, as a go-sql-driver DSN (user:password@tcp(host:3306)/credit); unset: the embedded SQLite file", func(c *Config, v string) error {
		if v != "" {
			if _, err := mysqldriver.ParseDSN(v); err != nil {
				return errors.New("is not a MySQL DSN such as user:password@tcp(host:3306)/credit")
			}
		}
		c.MySQLDSN = v
		return nil
	}},
	{"SQLITE_PATH", "sqlite-path", "credit.db", "embedded database file, used when MYSQL_DSN is unset", func(c *Config, v string) error {
		if v == "" {
			return errors.New("must name a file")
		}
		c.SQLitePath = v
		return nil
	}},
	{"ADMIN_TOKEN", "admin-token", "", "bearer token with the ADMIN role, at least 32 characters (prefer the variable: flags show in ps)", func(c *Config, v string) error {
		if v != "" && len(v) < 32 {
			return errors.New("must be at least 32 characters (try: openssl rand -hex 32)")
		}
		c.AdminToken = v
		return nil
	}},
	{"DEMO", "demo", "", "seed a demo partner and print its keys: true or false (unset: only on a new, empty embedded database)", func(c *Config, v string) error {
		if v == "" {
			c.Demo = nil
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		c.Demo = &b
		return nil
	}},
	{"MIGRATE", "migrate", "auto", "auto: apply pending schema migrations at start; manual: refuse to start until `credit migrate` has", func(c *Config, v string) error {
		switch v {
		case "auto", "manual":
			c.MigrateManually = v == "manual"
			return nil
		}
		return errors.New("must be auto or manual")
	}},
	{"LOG_FORMAT", "log-format", "text", "log lines as text or json", func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return errors.New("must be text or json")
		}
		c.LogFormat = v
		return nil
	}},
	{"LOG_LEVEL", "log-level", "info", "least important level logged: debug, info, warn or error", func(c *Config, v string) error {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return errors.New("must be debug, info, warn or error")
		}
		return nil
	}},
	{"METRICS_TOKEN", "metrics-token", "", "bearer token GET /metrics requires (unset: /metrics is open; keep it off the internet)", func(c *Config, v string) error {
		c.MetricsToken = v
		return nil
	}},
	{"PPROF_ADDR", "pprof-addr", "", "serve Go's profiles (/debug/pprof/) on this address, apart from the API, e.g. 127.0.0.1:6060", func(c *Config, v string) error {
		c.PprofAddr = v
		return nil
	}},
	{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "8s", "how long a shutdown waits for requests in flight before cutting them (a Go duration: 8s, 1m)", duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, 1, math.MaxInt64, "must be a positive duration such as 8s or 1m")},
	{"FORECAST_WINDOW", "forecast-window", "168h", "trailing window of usage that depletion forecasts take the burn rate over: 24h to 2160h (a Go duration)", duration(func(c *Config) *time.Duration { return &c.ForecastWindow }, 24*time.Hour, 90*24*time.Hour, "must be a duration from 24h to 2160h (90 days)")},
	{"WEBHOOK_ALLOW_INSECURE", "webhook-allow-insecure", "false", "accept http webhook endpoints, not only https: true or false", boolean(func(c *Config) *bool { return &c.WebhookAllowInsecure })},
	{"WEBHOOK_ALLOW_PRIVATE", "webhook-allow-private", "false", "accept webhook endpoints on addresses that are not public (loopback, private, link-local and other special-purpose ranges): true or false", boolean(func(c *Config) *bool { return &c.WebhookAllowPrivate })},
	{"WEBHOOK_TIMEOUT", "webhook-timeout", "10s", "how long a webhook attempt may take (a Go duration, 1s to 60s)", duration(func(c *Config) *time.Duration { return &c.WebhookTimeout }, time.Second, time.Minute, "must be a duration from 1s to 60s")},
	{"WEBHOOK_RETRIES", "webhook-retries", "", "pauses before each retry of a webhook or e-mail delivery, comma-separated Go durations (unset: 10s,1m,5m,30m,2h,6h, then 12h five times: about 3 days)", func(c *Config, v string) error {
		c.WebhookRetries = nil
		if v == "" {
			return nil
		}
		for part := range strings.SplitSeq(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(part))
			if err != nil || d <= 0 {
				return errors.New("must be a comma-separated list of positive durations such as 10s,1m,1h")
			}
			c.WebhookRetries = append(c.WebhookRetries, d)
		}
		if len(c.WebhookRetries) > 50 {
			return errors.New("must hold at most 50 pauses")
		}
		return nil
	}},
	{"DELIVERY_MAX_RATE", "delivery-max-rate", "1000", "most webhook and e-mail attempts this process makes a second (10 to 100000): beyond it deliveries wait their turn, and the writes keep the machine", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 || n > 100000 {
			return errors.New("must be a number of attempts a second from 10 to 100000")
		}
		c.DeliveryMaxRate = n
		return nil
	}},
	{"DELIVERY_WORKER", "delivery-worker", "true", "queue and attempt webhook and e-mail deliveries in this process: false on processes that serve the API only (at least one other process must deliver)", boolean(func(c *Config) *bool { return &c.DeliveryWorker })},
	{"SMTP_URL", "smtp-url", "", "mail server that alert e-mails go through: smtp://user:password@host:587 (STARTTLS when offered) or smtps://…:465; unset: e-mail is off", func(c *Config, v string) error {
		c.SMTPURL = nil
		if v == "" {
			return nil
		}
		u, err := email.ParseServer(v)
		c.SMTPURL = u
		return err
	}},
	{"SMTP_FROM", "smtp-from", "credit-alerts@localhost", "sender address of alert e-mails", func(c *Config, v string) error {
		if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
			return errors.New("must be an e-mail address such as alerts@example.com")
		}
		c.SMTPFrom = v
		return nil
	}},
	{"ALERT_LINK", "alert-link", "", "link alert e-mails give to see the customer, {id} replaced by its id (https://dashboard.example.com/customers/{id}); unset: this server's playground", func(c *Config, v string) error {
		if v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
				return errors.New("must be an http or https URL")
			}
		}
		c.AlertLink = v
		return nil
	}},
	{"PUBLIC_URL", "public-url", "", "where people reach this server, e.g. https://credit.example.com: alert e-mails without ALERT_LINK link to its playground; unset: http://localhost:PORT", func(c *Config, v string) error {
		if v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
				return errors.New("must be an http or https URL without a query")
			}
		}
		c.PublicURL = strings.TrimSuffix(v, "/")
		return nil
	}},
	{"PLAYGROUND_CDN", "playground-cdn", "false", "serve the playground from GraphiQL's public CDN instead of the files built into the binary: true or false", boolean(func(c *Config) *bool { return &c.PlaygroundCDN })},
}

// boolean reads true or false into the field of c that field names.
func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		*field(c) = b
		return nil
	}
}

// duration reads a Go duration from lo to hi into the field of c that field
// names; anything else is refused with msg.
func duration(field func(*Config) *time.Duration, lo, hi time.Duration, msg string) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			return errors.New(msg)
		}
		*field(c) = d
		return nil
	}
}

// ErrHelp is returned by Load when the arguments ask for help (it has been
// printed).
var ErrHelp = flag.ErrHelp

// Load reads the configuration of command `name` from getenv and args (flags
// win over variables). Usage and errors go to out.
func Load(name string, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	values := map[string]*string{}
	for _, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		values[s.env] = fs.String(s.flag, v, fmt.Sprintf("%s (%s)", s.help, s.env))
	}
	fs.Usage = func() { Usage(out, name) }
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	for _, s := range settings {
		if err := s.set(&c, *values[s.env]); err != nil {
			return c, fmt.Errorf("%s (--%s) %s, not %q", s.env, s.flag, err, redact(s.env, *values[s.env]))
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = fmt.Sprintf("http://localhost:%d", c.Port)
	}
	return c, nil
}

// redact keeps secrets out of error messages.
func redact(env, v string) string {
	switch env {
	case "ADMIN_TOKEN", "METRICS_TOKEN":
		return strings.Repeat("*", min(len(v), 8))
	case "MYSQL_DSN", "SMTP_URL":
		if at := strings.LastIndex(v, "@"); at >= 0 {
			return "…" + v[at:]
		}
	}
	return v
}

// Usage prints the commands and every setting with its variable and default.
func Usage(out io.Writer, name string) {
	fmt.Fprintf(out, `Usage: %[1]s [command] [flags]

Commands:
  (none)            serve the API (GraphQL on /graphql, playground on /)
  migrate           apply pending schema migrations and list them
  migrate status    list applied and pending schema migrations
  reconcile         check every balance against its records (exit 1 on drift)
  bench             measure the server against plain database/sql (see --help there)
  schema            print the GraphQL schema (what schema.graphql holds)

Flags and variables (a flag wins over its variable):
`, name)
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "unset"
		}
		fmt.Fprintf(out, "  --%-18s %-17s %s\n  %-37s default: %s\n", s.flag, s.env, s.help, "", def)
	}
	fmt.Fprintf(out, `  --help                                print this
  --version                             print the build's version and the schema version it expects

Go's own variables apply too: GOGC (default here 400) and GOMEMLIMIT (default here 900MiB).
`)
}
