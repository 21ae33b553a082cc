package config

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load("credit", nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8080 || c.SQLitePath != "credit.db" || c.MySQLDSN != "" || c.Demo != nil || c.MigrateManually ||
		c.LogFormat != "text" || c.LogLevel != slog.LevelInfo || c.ShutdownTimeout != 8*time.Second || c.PlaygroundCDN ||
		c.ForecastWindow != 7*24*time.Hour || c.PublicURL != "http://localhost:8080" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestVariablesAndFlags(t *testing.T) {
	vars := env(map[string]string{"PORT": "9999", "DEMO": "false", "MIGRATE": "manual", "LOG_FORMAT": "json", "LOG_LEVEL": "debug", "SHUTDOWN_TIMEOUT": "30s",
		"PUBLIC_URL": "https://credit.example.com/"})
	c, err := Load("credit", nil, vars, &bytes.Buffer{})
	if err != nil || c.Port != 9999 || c.Demo == nil || *c.Demo || !c.MigrateManually || c.LogFormat != "json" ||
		c.LogLevel != slog.LevelDebug || c.ShutdownTimeout != 30*time.Second || c.PublicURL != "https://credit.example.com" {
		t.Fatalf("from variables: %+v, %v", c, err)
	}
	// A flag wins over its variable.
	c, err = Load("credit", []string{"--port", "7000", "-log-level=warn"}, vars, &bytes.Buffer{})
	if err != nil || c.Port != 7000 || c.LogLevel != slog.LevelWarn {
		t.Fatalf("flags did not override: %+v, %v", c, err)
	}
}

// A value that does not parse stops the start with a message naming the
// setting, its flag and the value (secrets hidden).
func TestInvalidValuesAreNamed(t *testing.T) {
	for _, tc := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{"PORT": "80a"}, nil, `PORT (--port) must be a port number from 0 to 65535, not "80a"`},
		{nil, []string{"--port", "70000"}, `PORT (--port) must be a port`},
		{map[string]string{"DEMO": "maybe"}, nil, `DEMO (--demo) must be true or false, not "maybe"`},
		{map[string]string{"MIGRATE": "sometimes"}, nil, `MIGRATE (--migrate) must be auto or manual`},
		{map[string]string{"LOG_FORMAT": "xml"}, nil, `LOG_FORMAT (--log-format) must be text or json`},
		{map[string]string{"LOG_LEVEL": "loud"}, nil, `LOG_LEVEL (--log-level) must be debug, info, warn or error`},
		{map[string]string{"SHUTDOWN_TIMEOUT": "8"}, nil, `SHUTDOWN_TIMEOUT (--shutdown-timeout) must be a positive duration`},
		{map[string]string{"PLAYGROUND_CDN": "yes please"}, nil, `PLAYGROUND_CDN (--playground-cdn) must be true or false`},
		{map[string]string{"FORECAST_WINDOW": "12h"}, nil, `FORECAST_WINDOW (--forecast-window) must be a duration from 24h to 2160h`},
		{map[string]string{"WEBHOOK_RETRIES": "10s,soon"}, nil, `WEBHOOK_RETRIES (--webhook-retries) must be a comma-separated list`},
		{map[string]string{"WEBHOOK_TIMEOUT": "5m"}, nil, `WEBHOOK_TIMEOUT (--webhook-timeout) must be a duration from 1s to 60s`},
		{map[string]string{"DELIVERY_WORKER": "api"}, nil, `DELIVERY_WORKER (--delivery-worker) must be true or false`},
		{map[string]string{"DELIVERY_MAX_RATE": "5"}, nil, `DELIVERY_MAX_RATE (--delivery-max-rate) must be a number of attempts a second from 10 to 100000`},
		{map[string]string{"WEBHOOK_ALLOW_PRIVATE": "sure"}, nil, `WEBHOOK_ALLOW_PRIVATE (--webhook-allow-private) must be true or false`},
		{map[string]string{"PUBLIC_URL": "credit.example.com"}, nil, `PUBLIC_URL (--public-url) must be an http or https URL without a query`},
		{map[string]string{"PUBLIC_URL": "https://credit.example.com/?x=1"}, nil, `PUBLIC_URL (--public-url) must be an http or https URL without a query`},
		{map[string]string{"MYSQL_DSN": "root:s3cret@db:3306/credit"}, nil, `MYSQL_DSN (--mysql-dsn) is not a MySQL DSN`},
		{map[string]string{"ADMIN_TOKEN": "short-secret"}, nil, `ADMIN_TOKEN (--admin-token) must be at least 32 characters`},
		{nil, []string{"serve"}, `unexpected argument "serve"`},
	} {
		_, err := Load("credit", tc.args, env(tc.vars), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.vars, tc.args, err, tc.want)
			continue
		}
		for _, secret := range []string{"s3cret", "short-secret"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows a secret: %v", err)
			}
		}
	}
}

// --help lists every setting with its variable and default.
func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := Load("credit", []string{"--help"}, env(nil), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, s := range settings {
		if !strings.Contains(out.String(), "--"+s.flag) || !strings.Contains(out.String(), s.env) {
			t.Errorf("--help does not list %s/--%s:\n%s", s.env, s.flag, out.String())
		}
	}
	for _, want := range []string{"default: 8080", "default: credit.db", "migrate status", "--version", "GOGC"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not say %q", want)
		}
	}
}
