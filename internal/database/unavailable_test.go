package database_test

import (
	"fmt"
	"testing"

	mysqldriver "github.com/go-sql-driver/mysql"

	"github.com/cloudreseller/credit/internal/database"
)

// MySQL's ways of saying it has no room; SQLite's is tried on a real store
// (internal/httpapi, TestStoreWithoutRoom).
func TestIsFull(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{&mysqldriver.MySQLError{Number: 1114, Message: "The table 'usage_events' is full"}, true},
		{&mysqldriver.MySQLError{Number: 1021, Message: "Disk full (/var/lib/mysql/ibdata1); waiting for someone to free some space..."}, true},
		{&mysqldriver.MySQLError{Number: 1030, Message: "Got error 28 \"No space left on device\" from storage engine InnoDB"}, true},
		{fmt.Errorf("record usage: %w", &mysqldriver.MySQLError{Number: 1114}), true},
		{&mysqldriver.MySQLError{Number: 1030, Message: "Got error 5 from storage engine"}, false},
		{&mysqldriver.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
		{fmt.Errorf("disk is full"), false}, // words alone are not the store's
	} {
		if got := database.IsFull(c.err); got != c.full {
			t.Errorf("IsFull(%v) = %v, want %v", c.err, got, c.full)
		}
	}
}

// A server running read-only (a failover) refuses writes with 1290; 1836 in
// read-only mode. Other statements 1290 names (--skip-grant-tables, say) are
// not that.
func TestIsReadOnly(t *testing.T) {
	for _, c := range []struct {
		err      error
		readOnly bool
	}{
		{&mysqldriver.MySQLError{Number: 1290, Message: "The MariaDB server is running with the --read-only option so it cannot execute this statement"}, true},
		{fmt.Errorf("set credit: %w", &mysqldriver.MySQLError{Number: 1290, Message: "The MySQL server is running with the --super-read-only option so it cannot execute this statement"}), true},
		{&mysqldriver.MySQLError{Number: 1836, Message: "Running in read-only mode"}, true},
		{&mysqldriver.MySQLError{Number: 1290, Message: "The MySQL server is running with the --secure-file-priv option so it cannot execute this statement"}, false},
		{&mysqldriver.MySQLError{Number: 1062, Message: "Duplicate entry"}, false},
	} {
		if got := database.IsReadOnly(c.err); got != c.readOnly {
			t.Errorf("IsReadOnly(%v) = %v, want %v", c.err, got, c.readOnly)
		}
	}
}
