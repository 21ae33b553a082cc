// Package input checks free text that clients send: names, remarks, e-mail
// addresses, keys. Each check returns a BAD_USER_INPUT error naming the field.
package input

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloudreseller/credit/internal/errs"
)

// Required trims s and checks that it is not empty and at most max characters.
func Required(field, s string, max int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errs.E(errs.BadUserInput, "%s must not be empty", field)
	}
	if utf8.RuneCountInString(s) > max {
		return "", errs.E(errs.BadUserInput, "%s must be at most %d characters", field, max)
	}
	return s, nil
}

// Name is Required for a name: one line of text a person reads, so no
// control characters (line breaks, tabs: a customer's name heads the alert
// e-mails about it), no line or paragraph separators, and no bidirectional
// overrides or isolates, which make text display as something it is not.
func Name(field, s string, max int) (string, error) {
	s, err := Required(field, s, max)
	if err != nil {
		return "", err
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069') {
			return "", errs.E(errs.BadUserInput, "%s must be one line of text, without control characters (%U)", field, r)
		}
	}
	return s, nil
}

// Optional is Required for text that may be left out: nil or blank gives nil.
func Optional(field string, s *string, max int) (*string, error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil, nil
	}
	t, err := Required(field, *s, max)
	return &t, err
}

// Email checks an optional e-mail address (a bare address, no display name).
func Email(s *string) (*string, error) {
	e, err := Optional("email", s, 254)
	if err != nil || e == nil {
		return e, err
	}
	if !MailAddress(*e) {
		return nil, errs.E(errs.BadUserInput, "email is not a valid address (name@example.com)")
	}
	return e, nil
}

// MailAddress tells whether s is an address mail can be sent to: bare (no
// display name, no list), at most 254 bytes, its domain a name. Domain
// literals (name@[10.0.0.1]) are refused: they skip DNS, and would have the
// mail relay connect to whatever address a partner names. Dotless names
// (ops@localhost) are kept: where they lead is the relay's to say, and test
// and intranet relays take them.
func MailAddress(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || len(s) > 254 {
		return false
	}
	domain := s[strings.LastIndexByte(s, '@')+1:]
	return !strings.HasPrefix(domain, "[") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// MailKey is what two spellings of one address share: domains are not
// case-sensitive, local parts may be (RFC 5321), so only the domain folds.
func MailKey(s string) string {
	at := strings.LastIndexByte(s, '@')
	return s[:at+1] + strings.ToLower(s[at+1:])
}

// Identifier checks an identifier a client chose (an idempotency key, an event
// id): 1 to max characters, not blank. It is kept exactly as sent: identifiers
// compare byte for byte, so "k" and "k " are two keys.
func Identifier(field, s string, max int) (string, error) {
	if strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > max {
		return "", errs.E(errs.BadUserInput, "%s must be 1 to %d characters, not blank", field, max)
	}
	return s, nil
}
