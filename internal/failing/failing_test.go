package failing

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestLoggedOncePerStateChange(t *testing.T) {
	var out bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&out, nil)), "poller", "poll failed; retrying", "works again")
	l.Note(nil)
	for range 100 {
		l.Note(errors.New("down"))
	}
	if !l.Failing() {
		t.Fatal("not failing after a failure")
	}
	l.Note(nil)
	l.Note(nil)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "poller: poll failed; retrying") || !strings.Contains(lines[1], "poller: works again") {
		t.Fatalf("logged:\n%s", out.String())
	}
}
