package input

import "testing"

// An address a notice can be mailed to: bare, on an Internet domain.
func TestMailAddress(t *testing.T) {
	for s, want := range map[string]bool{
		"ops@example.com":                   true,
		"first.last+tag@mail.example.co.uk": true,
		"OPS@Example.COM":                   true,
		"ünïcode@exämple.com":               true,
		"a@b":                               false, // no dot: not an Internet domain
		"root@localhost":                    false,
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
