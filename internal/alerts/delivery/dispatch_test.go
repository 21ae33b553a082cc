package delivery

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// What is kept of a response is at most n bytes of valid text.
func TestClipAndText(t *testing.T) {
	s := strings.Repeat("é", 600) // 1,200 bytes
	c := clip(s, 1023)
	if len(c) != 1022 || !utf8.ValidString(c) {
		t.Fatalf("clipped to %d bytes, valid %v", len(c), utf8.ValidString(c))
	}
	if got := *text("ok\xff"); got != "ok\uFFFD" {
		t.Fatalf("text %q", got)
	}
	if text("") != nil {
		t.Fatal("empty text is not NULL")
	}
}
