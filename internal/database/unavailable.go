package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"
	"syscall"

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
