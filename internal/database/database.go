// Package database opens the store (MySQL in production, an embedded SQLite file
// otherwise), migrates its schema, and runs transactions with retries.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync/atomic"
	"time"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/glebarez/sqlite"
	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	sqlite3 "modernc.org/sqlite/lib"
)

// Config says which store to open.
type Config struct {
	// MySQLDSN, when set, selects MySQL (a go-sql-driver DSN).
	MySQLDSN string
	// SQLitePath is the embedded database file used without MySQLDSN.
	SQLitePath string
	// StatementTimeout bounds each read from and write to MySQL, so that a
	// frozen or unreachable server fails a request quickly instead of hanging
	// it (DefaultStatementTimeout when zero).
	StatementTimeout time.Duration
	// Migrations says what Open does with the schema.
	Migrations MigrationMode
}

// MigrationMode is what Open does with the schema.
type MigrationMode int

// The modes: MIGRATE=auto (the default), MIGRATE=manual, and opening to
// migrate or inspect (`credit migrate`).
const (
	// MigrateAtOpen applies pending migrations.
	MigrateAtOpen MigrationMode = iota
	// RequireMigrated refuses a database not at SchemaVersion.
	RequireMigrated
	// LeaveSchema opens the database as it is.
	LeaveSchema
)

// DefaultStatementTimeout is the server's bound on one MySQL round trip: the
// service's statements take milliseconds.
const DefaultStatementTimeout = 1500 * time.Millisecond

// Open connects to the configured store and migrates its schema.
func Open(ctx context.Context, cfg Config) (*gorm.DB, error) {
	var (
		db  *gorm.DB
		err error
	)
	if cfg.StatementTimeout <= 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	if cfg.MySQLDSN != "" {
		db, err = openMySQL(cfg.MySQLDSN, cfg.StatementTimeout)
	} else {
		db, err = openSQLite(cfg.SQLitePath)
	}
	if err != nil {
		return nil, err
	}
	migrate := map[MigrationMode]func(context.Context, *gorm.DB) error{
		MigrateAtOpen:   Migrate,
		RequireMigrated: RequireCurrent,
		LeaveSchema:     func(context.Context, *gorm.DB) error { return nil },
	}[cfg.Migrations]
	if err := migrate(ctx, db); err != nil {
		Close(db)
		return nil, fmt.Errorf("migrate schema: %w", err)
	}
	if !IsMySQL(db) {
		// SQLite picks indexes by the statistics ANALYZE gathers; optimize
		// refreshes them where the data has changed much since.
		if err := db.WithContext(ctx).Exec("PRAGMA optimize").Error; err != nil {
			Close(db)
			return nil, err
		}
	}
	return db, nil
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		// Microseconds survive a round trip through both stores, so a time read
		// back equals the time written (cursors depend on it).
		NowFunc:        func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		TranslateError: true,
		Logger:         logger.Default.LogMode(logger.Silent),
	}
}

func openMySQL(dsn string, timeout time.Duration) (*gorm.DB, error) {
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("MYSQL_DSN: %w", err)
	}
	// Times are stored and read in UTC whatever the DSN says.
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// A DSN's own timeouts win; otherwise every round trip is bounded.
	if cfg.Timeout == 0 {
		cfg.Timeout = timeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = timeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = timeout
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["charset"] = "utf8mb4"
	// Parameters are interpolated by the driver (safe with utf8mb4): one round
	// trip per statement instead of prepare, execute and close.
	cfg.InterpolateParams = true
	if err := createDatabaseIfMissing(cfg); err != nil {
		return nil, err
	}
	// Every connection reads committed data (see Transact), set once when it
	// is opened rather than before every transaction.
	isolation, err := isolationVariable(cfg)
	if err != nil {
		return nil, err
	}
	cfg.Params[isolation] = "'READ-COMMITTED'"
	db, err := gorm.Open(mysql.Open(cfg.FormatDSN()), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open MySQL: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// Keep the connections a busy server uses: opening one costs several round
	// trips and a thread on the database.
	sqlDB.SetMaxOpenConns(64)
	sqlDB.SetMaxIdleConns(64)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	t := &traits{}
	if err := db.Raw("SELECT @@auto_increment_increment").Scan(&t.idStep).Error; err != nil {
		return nil, fmt.Errorf("MySQL at %s: %w", cfg.Addr, err)
	}
	t.idStep = max(t.idStep, 1)
	if err := db.Use(t); err != nil {
		return nil, err
	}
	return db, nil
}

const traitsName = "credit:traits"

// traits are what Open learned of a MySQL server, kept with the *gorm.DB
// (its config is shared by its sessions and transactions).
type traits struct {
	// idStep is auto_increment_increment: the gap between the ids of one
	// multi-row insert (see InsertedIDs).
	idStep uint
}

// Name names the traits among the DB's plugins.
func (*traits) Name() string { return traitsName }

// Initialize is a gorm.Plugin's hook: traits add no callbacks.
func (*traits) Initialize(*gorm.DB) error { return nil }

// isolationVariable names the session variable of the isolation level:
// MariaDB (before 11.1) knows only tx_isolation, MySQL 8 only
// transaction_isolation.
func isolationVariable(cfg *mysqldriver.Config) (string, error) {
	probe, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return "", err
	}
	defer probe.Close()
	var name string
	err = probe.QueryRow("SELECT CASE WHEN @@version LIKE '%MariaDB%' THEN 'tx_isolation' ELSE 'transaction_isolation' END").Scan(&name)
	if err != nil {
		return "", fmt.Errorf("MySQL at %s: %w", cfg.Addr, err)
	}
	return name, nil
}

// createDatabaseIfMissing creates the DSN's database when the server says it does
// not exist, so that pointing the service at a fresh MySQL just works.
func createDatabaseIfMissing(cfg *mysqldriver.Config) error {
	if cfg.DBName == "" {
		return errors.New("MYSQL_DSN names no database (…/credit?parseTime=true)")
	}
	probe, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer probe.Close()
	err = probe.Ping()
	var me *mysqldriver.MySQLError
	if err == nil || !errors.As(err, &me) || me.Number != 1049 { // 1049: unknown database
		return err
	}
	server := *cfg
	server.DBName = ""
	conn, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Exec("CREATE DATABASE IF NOT EXISTS `" + cfg.DBName + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	if err == nil {
		slog.Info("created MySQL database", "database", cfg.DBName)
	}
	return err
}

func openSQLite(path string) (*gorm.DB, error) {
	if path == "" {
		path = "credit.db"
	}
	q := url.Values{}
	// WAL lets readers go on while one transaction writes; IMMEDIATE takes the write
	// lock when a transaction begins, so two writers queue (busy_timeout) instead of
	// failing halfway through.
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")

	// Times are written as "2006-01-02 15:04:05.999999999-07:00", the driver's
	// default; always in UTC, so they compare in time order as text. (Do not add
	// _time_format: this driver then ignores _txlock.)
	q.Set("_txlock", "immediate")
	db, err := gorm.Open(sqlite.Open("file:"+path+"?"+q.Encode()), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetConnMaxLifetime(SQLiteConnLifetime)
	return db, nil
}

// SQLiteConnLifetime is how long a SQLite connection serves before it is
// replaced. SQLite plans by the statistics (ANALYZE's) that a connection read
// when it opened, and does not see newer ones: connections kept from when a
// table was small walked a partner's million records in time order to find
// one customer's ten (600 ms), or counted a time range at 250 ms instead of
// 35, long after ANALYZE had run.
const SQLiteConnLifetime = 10 * time.Second

// IsMySQL tells whether db is a MySQL store.
func IsMySQL(db *gorm.DB) bool { return db.Dialector.Name() == "mysql" }

// Transact runs fn in a transaction and commits it if fn returns nil. A
// transaction that loses a deadlock or a lock wait is run again from the start (a
// number of times, after a short random pause that grows), so callers see it
// only when it keeps failing until the request's deadline. On MySQL every
// connection runs at READ COMMITTED (set when it opens), so that what a
// transaction reads after taking a row lock is the latest committed state.
func Transact(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	const attempts = 30
	var err error
	for i := range attempts {
		err = db.WithContext(ctx).Transaction(fn)
		if err == nil || !retryable(err) {
			return err
		}
		retried.Add(1)
		// A random pause that grows with each loss (up to 100 ms) lets the
		// contenders go one after the other.
		pause := time.Duration(1+rand.IntN(min(100, 5<<min(i, 5)))) * time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

// retried counts transactions run again, process-wide: a figure for
// operators (RetriedTransactions), like the pool's, of the whole process.
var retried atomic.Uint64

// RetriedTransactions is how many times Transact has run a transaction again
// since the process started.
func RetriedTransactions() uint64 { return retried.Load() }

// retryable tells whether a transaction failed only because of concurrency.
func retryable(err error) bool {
	var me *mysqldriver.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205 // deadlock, lock wait timeout
	}
	var se *gosqlite.Error
	if errors.As(err, &se) {
		code := se.Code() & 0xff
		return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
	}
	return false
}

// IsDuplicate tells whether err is a unique-key violation.
func IsDuplicate(err error) bool { return errors.Is(err, gorm.ErrDuplicatedKey) }

// Ping checks that the store answers.
func Ping(ctx context.Context, db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the store's connections.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
