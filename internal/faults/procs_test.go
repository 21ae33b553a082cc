package faults_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cloudreseller/credit/internal/testenv"
)

// serverBinary is the server built once for the package's tests, run as its
// own process so that it can be killed, frozen and stopped like a real one.
var serverBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credit-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBinary = filepath.Join(dir, "credit")
	build := exec.Command("go", "build", "-o", serverBinary, "github.com/cloudreseller/credit")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the server:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one server process.
type server struct {
	t       *testing.T
	store   string   // MYSQL_DSN=… or SQLITE_PATH=…
	env     []string // more settings
	port    string
	cmd     *exec.Cmd
	out     *testenv.Output
	exited  chan struct{}
	exitErr error
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// startServer runs a server process on the MySQL DSN and waits until it is
// ready.
func startServer(t *testing.T, dsn string) *server {
	t.Helper()
	return startServerOn(t, "MYSQL_DSN="+dsn)
}

// startServerOn runs a server process on the store named by an environment
// setting (MYSQL_DSN=… or SQLITE_PATH=…).
func startServerOn(t *testing.T, store string, env ...string) *server {
	t.Helper()
	s := &server{t: t, store: store, env: env, port: freePort(t)}
	s.start()
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *server) url() string { return "http://127.0.0.1:" + s.port }

func (s *server) start() {
	s.t.Helper()
	s.out = &testenv.Output{}
	s.cmd = exec.Command(serverBinary)
	s.cmd.Env = append(append(os.Environ(), s.store, "PORT="+s.port, "ADMIN_TOKEN="+testenv.AdminToken, "DEMO=false"), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(cmd *exec.Cmd) { s.exitErr = cmd.Wait(); close(exited) }(s.cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(s.url() + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server did not get ready:\n%s", s.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process at once (SIGKILL), as a crash would.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// terminate sends SIGTERM and returns how long the process took to exit,
// and how it exited.
func (s *server) terminate() (time.Duration, error) {
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return time.Since(start), s.exitErr
	case <-time.After(20 * time.Second):
		s.t.Errorf("the server did not exit within 20 s of SIGTERM:\n%s", s.out)
		return 20 * time.Second, nil
	}
}

// mariadb is a MariaDB server of the test's own, on its own port and data
// directory, so that stopping or freezing it leaves the shared one running.
type mariadb struct {
	t     *testing.T
	dir   string
	port  string
	cmd   *exec.Cmd
	done  chan struct{}
	start func()
}

const mariadbd = "/usr/sbin/mariadbd"

func startMariaDB(t *testing.T) *mariadb {
	t.Helper()
	if _, err := os.Stat(mariadbd); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: CI must run the outage tests", mariadbd)
		}
		t.Skip("no MariaDB server binary here")
	}
	m := &mariadb{t: t, dir: t.TempDir(), port: freePort(t)}
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"),
		"--user=root", "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	m.start = func() {
		m.cmd = exec.Command(mariadbd, "--no-defaults", "--datadir="+filepath.Join(m.dir, "data"), "--user=root",
			"--port="+m.port, "--bind-address=127.0.0.1", "--socket="+filepath.Join(m.dir, "sock"),
			"--pid-file="+filepath.Join(m.dir, "pid"), "--innodb-buffer-pool-size=32M", "--skip-log-bin")
		log, _ := os.OpenFile(filepath.Join(m.dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		m.cmd.Stdout, m.cmd.Stderr = log, log
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		m.done = make(chan struct{})
		go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); log.Close(); close(done) }(m.cmd, m.done)
		m.waitUp()
	}
	m.start()
	t.Cleanup(func() {
		m.cmd.Process.Signal(syscall.SIGCONT)
		m.cmd.Process.Kill()
		<-m.done
	})
	return m
}

func (m *mariadb) dsn(database string) string {
	return "root@tcp(127.0.0.1:" + m.port + ")/" + database
}

func (m *mariadb) waitUp() {
	m.t.Helper()
	db, _ := sql.Open("mysql", m.dsn(""))
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(m.dir, "log"))
			m.t.Fatalf("MariaDB on port %s did not start: %v\n%s", m.port, err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop shuts MariaDB down (SIGTERM) and waits until it has exited.
func (m *mariadb) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		m.t.Fatal("MariaDB did not stop")
	}
}

// freeze stops the server process without closing its connections, as a hung
// or partitioned database looks to its clients; thaw resumes it.
// freeze stops the database and returns once it is stopped: a signal is
// delivered asynchronously, and a query could otherwise still be answered.
func (m *mariadb) freeze() {
	m.cmd.Process.Signal(syscall.SIGSTOP)
	stat := fmt.Sprintf("/proc/%d/stat", m.cmd.Process.Pid)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		// The state follows the command name in parentheses: "pid (comm) T …".
		if b, err := os.ReadFile(stat); err == nil {
			if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
				return
			}
		}
	}
}

func (m *mariadb) thaw() { m.cmd.Process.Signal(syscall.SIGCONT) }
