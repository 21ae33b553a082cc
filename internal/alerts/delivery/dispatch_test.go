package delivery

import (
	"strings"
	"testing"
	"unicode/utf8"
)


// A lease takes at most PerTarget deliveries of a target and at most room
// targets, in due order, and none of a channel this process does not run.
func TestTake(t *testing.T) {
	s := &Service{opts: Options{PerTarget: 2}, channels: map[string]Channel{"webhook": nil, "email": nil}}
	s.channels["webhook"], s.channels["email"] = stub{}, stub{}
	rows := []leased{
		{ID: 1, Channel: "webhook", TargetID: 1}, {ID: 2, Channel: "webhook", TargetID: 1}, {ID: 3, Channel: "webhook", TargetID: 1},
		{ID: 4, Channel: "email", TargetID: 1}, {ID: 5, Channel: "sms", TargetID: 1}, {ID: 6, Channel: "webhook", TargetID: 2},
		{ID: 7, Channel: "webhook", TargetID: 3},
	}
	cases := []struct {
		room int
		want string
	}{
		{10, "1 2 4 6 7"},
		{2, "1 2 4"},
		{1, "1 2"},
	}
	for _, c := range cases {
		var ids []string
		for _, d := range s.take(rows, c.room) {
			ids = append(ids, string(rune('0'+d.ID)))
		}
		if got := strings.Join(ids, " "); got != c.want {
			t.Errorf("room %d: took %s, want %s", c.room, got, c.want)
		}
	}
}

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

// stub is a channel that is never called here.
type stub struct{ Channel }
