package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"syscall"

	gosqlite "github.com/glebarez/go-sqlite"
	mysqldriver "github.com/go-sql-driver/mysql"
)

// IsUnavailable tells whether err means the store is not answering (down,
// unreachable, frozen past a deadline, restarting) rather than refusing the
// statement: the request may succeed if tried again shortly, and the client is
// told so (SERVICE_UNAVAILABLE) instead of getting an internal error.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, mysqldriver.ErrInvalidConn) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var me *mysqldriver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, 1053, 1077, 1152, 1317, 1927, 3024: // too many connections, shutdown, aborted, killed, query timeout
			return true
		}
	}
	return strings.Contains(err.Error(), "sql: database is closed")
}

// IsFull tells whether err means the store has no room left for what a
// statement writes (a full disk, SQLite's page cap, a full tablespace): the
// transaction rolled back, and the same request succeeds once an operator
// makes room. Clients are told so (SERVICE_UNAVAILABLE) instead of getting
// an internal error.
func IsFull(err error) bool {
	var le *gosqlite.Error
	if errors.As(err, &le) {
		return le.Code()&0xff == sqliteFull
	}
	var me *mysqldriver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1021, 1114: // disk full; the table is full
			return true
		case 1030: // "Got error 28 from storage engine": no space left on device
			return strings.Contains(me.Message, "error 28")
		}
	}
	return false
}

// sqliteFull is SQLITE_FULL, the primary result code of a write that found no
// room.
const sqliteFull = 13

// IsReadOnly tells whether err means the store takes no writes for now: a
// MySQL server running read-only, as a primary does while a failover moves
// writes elsewhere. Reads go on; the write succeeds when tried again on the
// new primary.
func IsReadOnly(err error) bool {
	var me *mysqldriver.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	return me.Number == 1290 && strings.Contains(me.Message, "read-only") || me.Number == 1836 // ER_OPTION_PREVENTS_STATEMENT; ER_READ_ONLY_MODE
}
