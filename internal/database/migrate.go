package database

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	"gorm.io/gorm"
)

// The schema is versioned SQL, one directory per dialect, applied with goose:
// plain files a reviewer can read, run in order and recorded in the database's
// goose_db_version table. goose is the well-kept tool for exactly this, works
// on a *sql.DB, reads embedded files and needs no other process.
//
//go:embed migrations
var migrationFiles embed.FS

// SchemaVersion is the newest migration this build knows (read once from the
// embedded files: /readyz asks on every probe).
var SchemaVersion = sync.OnceValue(func() int64 {
	p, err := newMigrator(nil, "sqlite")
	if err != nil {
		return 0
	}
	srcs := p.ListSources()
	return srcs[len(srcs)-1].Version
})

// Migrate brings the schema up to SchemaVersion. A database created by the
// first release (with GORM's AutoMigrate and no version table) is adopted: its
// baseline migration creates nothing that exists, and the later ones convert
// it. A database migrated past what this build knows is refused.
func Migrate(ctx context.Context, db *gorm.DB) error {
	p, current, err := migratorAt(ctx, db)
	if err != nil {
		return err
	}
	if err := refuseNewer(current); err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		slog.Info("schema migrated", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return err
}

// RequireCurrent refuses a database whose schema is not at SchemaVersion,
// saying what to do (MIGRATE=manual: migrations are applied by `credit
// migrate` only).
func RequireCurrent(ctx context.Context, db *gorm.DB) error {
	_, current, err := migratorAt(ctx, db)
	if err != nil {
		return err
	}
	if err := refuseNewer(current); err != nil {
		return err
	}
	if known := SchemaVersion(); current < known {
		return fmt.Errorf("the database schema is at version %d and this build needs %d: run `credit migrate` (MIGRATE=manual)", current, known)
	}
	return nil
}

// migratorAt returns the migrations of db's dialect and the version db is at.
func migratorAt(ctx context.Context, db *gorm.DB) (*goose.Provider, int64, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, 0, err
	}
	p, err := newMigrator(sqlDB, db.Dialector.Name())
	if err != nil {
		return nil, 0, err
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read the schema version: %w", err)
	}
	return p, current, nil
}

// refuseNewer refuses a schema migrated past what this build knows.
func refuseNewer(current int64) error {
	if known := SchemaVersion(); current > known {
		return fmt.Errorf("the database schema is at version %d, newer than this build knows (%d): run a newer build", current, known)
	}
	return nil
}

// Migration is one migration and whether the database has it.
type Migration struct {
	Version   int64
	File      string
	Applied   bool
	AppliedAt time.Time
}

// Status lists every migration this build knows, oldest first, applied or
// pending in the database.
func Status(ctx context.Context, db *gorm.DB) ([]Migration, error) {
	p, _, err := migratorAt(ctx, db)
	if err != nil {
		return nil, err
	}
	status, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Migration, len(status))
	for i, m := range status {
		out[i] = Migration{Version: m.Source.Version, File: m.Source.Path, Applied: m.State == goose.StateApplied, AppliedAt: m.AppliedAt}
	}
	return out, nil
}

func newMigrator(sqlDB *sql.DB, dialect string) (*goose.Provider, error) {
	dir, gooseDialect := "migrations/sqlite", goose.DialectSQLite3
	var opts []goose.ProviderOption
	if dialect == "mysql" {
		dir, gooseDialect = "migrations/mysql", goose.DialectMySQL
		// Two processes starting at once take turns.
		opts = append(opts, goose.WithSessionLocker(mysqlLock{}))
	}
	files, err := fs.Sub(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	if sqlDB == nil {
		sqlDB = &sql.DB{} // only listing sources: never used
	}
	opts = append(opts, goose.WithSlog(slog.New(slog.DiscardHandler)), goose.WithDisableGlobalRegistry(true))
	return goose.NewProvider(gooseDialect, sqlDB, files, opts...)
}

// mysqlLock serialises migrations across processes with a MySQL named lock.
type mysqlLock struct{}

const migrationLockName = "credit_schema_migrations"

func (mysqlLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", migrationLockName).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return errors.New("another process held the schema migration lock for 60 s")
	}
	return nil
}

func (mysqlLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT RELEASE_LOCK(?)", migrationLockName)
	return err
}

// CurrentVersion is the schema version the database is at.
func CurrentVersion(ctx context.Context, db *gorm.DB) (int64, error) {
	var v int64
	err := db.WithContext(ctx).Raw("SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied").Scan(&v).Error
	return v, err
}
