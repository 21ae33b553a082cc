package input

import (
	"strings"
	"testing"
)

// An address a notice can be mailed to: bare, on a domain name.
func TestMailAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"ops@example.com":                   true,
		"first.last+tag@mail.example.co.uk": true,
		"OPS@Example.COM":                   true,
		"ünïcode@exämple.com":               true,
		"root@localhost":                    true, // the relay's to route
		"a@b":                               true,
		"ops@[127.0.0.1]":                   false, // a domain literal skips DNS and the relay's routing
		"ops@example.com.":                  false,
		"ops@.example.com":                  false,
		"Ops <ops@example.com>":             false, // a display name: send the address alone
		"a@b.com,c@d.com":                   false,
		"x@y.com\r\nBcc: e@z.com":           false,
		"not an address":                    false,
		"":                                  false,
	} {
		if got := MailAddress(s); got != want {
			t.Errorf("MailAddress(%q) = %v, want %v", s, got, want)
		}
	}
}

// Repeats of an address differ at most in the case of the domain.
func TestMailKey(t *testing.T) {
	if MailKey("Ops@Example.COM") != MailKey("Ops@example.com") {
		t.Error("the domain's case makes two addresses")
	}
	if MailKey("Ops@example.com") == MailKey("ops@example.com") {
		t.Error("the local part's case is folded; mail servers may tell them apart")
	}
}

// A name is one line of text a person reads: no line breaks, tabs or other
// control characters, and no bidirectional overrides that would make it read
// as something else (in an e-mail, say).
func TestName(t *testing.T) {
	for s, ok := range map[string]bool{
		"Acme Corp":                    true,
		"  Acme Corp  ":                true, // trimmed
		"Ünïcode 😀 شركة":               true,
		"Evil\r\nBcc: x@example.com":   false,
		"Tab\there":                    false,
		"Bell\a":                       false,
		"C1\u0085next line":            false,
		"Line\u2028separator":          false,
		"Right-to-left \u202Eoverride": false,
		"Isolate \u2066x\u2069":        false,
	} {
		got, err := Name("name", s, 200)
		if (err == nil) != ok {
			t.Errorf("Name(%q): %v, want accepted %v", s, err, ok)
		}
		if ok && got != strings.TrimSpace(s) {
			t.Errorf("Name(%q) = %q", s, got)
		}
	}
}
