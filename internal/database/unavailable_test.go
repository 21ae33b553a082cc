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
