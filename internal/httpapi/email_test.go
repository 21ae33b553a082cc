package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/email"
	"github.com/cloudreseller/credit/internal/httpapi"
	"github.com/cloudreseller/credit/internal/testenv"
)

// mailServer starts an API server that e-mails alerts through a real SMTP
// server started for the test (STARTTLS, AUTH PLAIN), with short retries.
func mailServer(t *testing.T, db *gorm.DB) (*testenv.Server, *testenv.SMTPServer) {
	mail := testenv.NewSMTPServer(t)
	s := testenv.NewServerWith(t, db, httpapi.Services{}, testenv.Options{
		Deliveries: delivery.Options{Retries: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}, Poll: 20 * time.Millisecond},
		Email:      email.Options{Server: mail.URL, From: "alerts@credit.test", TLS: mail.TLS, Timeout: 5 * time.Second},
	})
	return s, mail
}

type emailDelivery struct {
	ID, Status, AddressID string
	AlertID, NoticeID     *string
	Attempts              []struct {
		SMTPCode *int `json:"smtpCode"`
		Error    *string
	}
}

// emailLog lists a partner's e-mail deliveries once there are at least n
// and none is PENDING.
func emailLog(t *testing.T, s *testenv.Server, key string, n int) []emailDelivery {
	t.Helper()
	var out struct {
		EmailDeliveries struct{ Nodes []emailDelivery }
	}
	settled := func() bool {
		s.Must(t, key, `{ emailDeliveries(first: 100) { nodes { id status addressId alertId noticeId attempts { smtpCode error } } } }`, nil, &out)
		nodes := out.EmailDeliveries.Nodes
		return len(nodes) >= n && !slices.ContainsFunc(nodes, func(d emailDelivery) bool { return d.Status == "PENDING" })
	}
	if !testenv.Eventually(10*time.Second, settled) {
		t.Fatalf("want %d e-mail deliveries settled, none PENDING: %+v", n, out.EmailDeliveries.Nodes)
	}
	return out.EmailDeliveries.Nodes
}

// A partner's own addresses get every alert of its customers, a customer's
// get that customer's, an address on both gets each alert once; each e-mail
// goes over STARTTLS, says what happened and what to do, and a server that
// refuses for a while is retried.
func TestEmailDelivery(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, mail := mailServer(t, db)
		mail.Refuse = func(to string, n int) error {
			if to == "ops@reseller.test" && n == 1 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
			}
			return nil
		}
		_, partner := s.CreatePartner(t, "Reseller", "100000")
		billing := s.CreateKey(t, "feed", "BILLING", "")
		acme := s.CreateCustomer(t, partner, "Acme Ltd", false)
		globex := s.CreateCustomer(t, partner, "Globex", false)

		var set struct {
			SetNotificationAddresses []struct{ ID, Address string }
		}
		s.Must(t, partner, `mutation { setNotificationAddresses(input: {addresses: ["ops@reseller.test", "shared@reseller.test", "ops@reseller.test"]}) { id address } }`, nil, &set)
		if len(set.SetNotificationAddresses) != 2 {
			t.Fatalf("partner addresses: %+v (a repeat is dropped)", set.SetNotificationAddresses)
		}
		s.Must(t, partner, `mutation($c: ID!) { setNotificationAddresses(input: {customerId: $c, addresses: ["finance@acme.test", "shared@reseller.test"]}) { id address } }`,
			map[string]any{"c": acme}, &set)

		// Credit raises alerts (the customers become ACTIVE), usage more.
		s.SetCredit(t, partner, acme, "100")
		s.SetCredit(t, partner, globex, "100")
		record(t, s, billing, event("m1", acme, "80"))
		record(t, s, billing, event("m2", globex, "95"))
		var raised struct {
			Alerts struct {
				Nodes []struct{ Customer struct{ ID string } }
			}
		}
		s.Must(t, partner, `{ alerts(first: 100) { nodes { customer { id } } } }`, nil, &raised)
		alertsOf := map[string]int{}
		for _, a := range raised.Alerts.Nodes {
			alertsOf[a.Customer.ID]++
		}
		if alertsOf[acme] < 2 || alertsOf[globex] < 3 {
			t.Fatalf("alerts per customer: %v", alertsOf)
		}
		want := 3*alertsOf[acme] + 2*alertsOf[globex]
		got := mail.WaitFor(t, want)
		time.Sleep(300 * time.Millisecond)
		if got = mail.Received(); len(got) != want {
			t.Fatalf("%d e-mails, want %d (each address once per alert)", len(got), want)
		}
		per := map[string]int{}
		for _, m := range got {
			if !m.TLS {
				t.Fatal("an e-mail was sent without STARTTLS")
			}
			if m.From != "alerts@credit.test" || len(m.To) != 1 {
				t.Fatalf("envelope %s → %v", m.From, m.To)
			}
			per[m.To[0]]++
		}
		if per["ops@reseller.test"] != alertsOf[acme]+alertsOf[globex] || per["finance@acme.test"] != alertsOf[acme] ||
			per["shared@reseller.test"] != alertsOf[acme]+alertsOf[globex] {
			t.Fatalf("e-mails per address: %v", per)
		}
		var letter testenv.Mail
		for _, m := range got {
			if m.To[0] == "finance@acme.test" && strings.Contains(m.Header("Subject"), "75 %") {
				letter = m
			}
		}
		body := letter.Body()
		for _, want := range []string{"Acme Ltd (customer " + acme + ") has used 75 % of its credit", "Credit:     100.00", "Used:       80.00",
			"Available:  20.00", "Watch its usage", "customer(id: \"" + acme + "\")"} {
			if !strings.Contains(body, want) {
				t.Fatalf("the e-mail does not say %q:\n%s", want, body)
			}
		}
		if id := letter.Header("Message-Id"); !strings.HasPrefix(id, "<a") || !strings.HasSuffix(id, "@credit.test>") {
			t.Fatalf("Message-ID %q", id)
		}
		// It names this service, as webhooks do, not the mail library's version.
		if ua, xm := letter.Header("User-Agent"), letter.Header("X-Mailer"); ua != "credit-alerts/1" || xm != "credit-alerts/1" {
			t.Fatalf("User-Agent %q, X-Mailer %q", ua, xm)
		}

		log := emailLog(t, s, partner, want)
		retried := 0
		for _, d := range log {
			if d.Status != "DELIVERED" {
				t.Fatalf("delivery %+v", d)
			}
			if len(d.Attempts) == 2 {
				retried++
				if c := d.Attempts[0].SMTPCode; c == nil || *c != 451 || *d.Attempts[1].SMTPCode != 250 {
					t.Fatalf("retried delivery's attempts: %+v", d.Attempts)
				}
			}
		}
		if retried != 1 {
			t.Fatalf("%d deliveries retried, want the one refused with 451", retried)
		}

		// A resend sends the same message again: same Message-ID.
		var resent struct{ ResendEmailDelivery struct{ Status string } }
		s.Must(t, partner, `mutation($id: ID!) { resendEmailDelivery(id: $id) { status } }`, map[string]any{"id": log[0].ID}, &resent)
		again := mail.WaitFor(t, want+1)
		last := again[len(again)-1]
		if !slices.ContainsFunc(got, func(m testenv.Mail) bool { return m.Header("Message-Id") == last.Header("Message-Id") }) {
			t.Fatalf("the resent e-mail has a new Message-ID %q", last.Header("Message-Id"))
		}
	})
}

// An address the mail server refuses for good (5xx) fails at once: no
// retry, listed among the failed deliveries with the server's answer.
func TestEmailRefusedAddressFails(t *testing.T) {
	s, mail := mailServer(t, testenv.SQLite(t))
	mail.Refuse = func(to string, _ int) error {
		if to == "nobody@acme.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		}
		return nil
	}
	_, partner := s.CreatePartner(t, "Reseller", "100000")
	billing := s.CreateKey(t, "feed", "BILLING", "")
	cust := s.CreateCustomer(t, partner, "Acme", false)
	s.SetCredit(t, partner, cust, "100")
	s.Must(t, partner, `mutation { setNotificationAddresses(input: {addresses: ["nobody@acme.test"]}) { id } }`, nil, nil)
	alerts := record(t, s, billing, event("r1", cust, "80")).Alerts
	log := emailLog(t, s, partner, len(alerts))
	var failed struct {
		EmailDeliveries struct {
			Nodes []struct {
				LastError string
				Attempts  []struct {
					SMTPCode *int `json:"smtpCode"`
					Response string
				}
			}
		}
	}
	s.Must(t, partner, `{ emailDeliveries(status: FAILED) { nodes { lastError attempts { smtpCode response } } } }`, nil, &failed)
	if n := len(failed.EmailDeliveries.Nodes); n != len(log) || n == 0 {
		t.Fatalf("%d failed of %d", n, len(log))
	}
	d := failed.EmailDeliveries.Nodes[0]
	if len(d.Attempts) != 1 || d.Attempts[0].SMTPCode == nil || *d.Attempts[0].SMTPCode != 550 || d.LastError != "the mail server refused the address" ||
		!strings.Contains(d.Attempts[0].Response, "No such user") {
		t.Fatalf("refused delivery: %+v", d)
	}
	if n := len(mail.Received()); n != 0 {
		t.Fatalf("%d e-mails accepted", n)
	}
}

// A partner never sees or changes another partner's addresses or deliveries;
// addresses are checked.
func TestEmailIsolation(t *testing.T) {
	s, mail := mailServer(t, testenv.SQLite(t))
	_, a := s.CreatePartner(t, "A", "100000")
	_, b := s.CreatePartner(t, "B", "100000")
	billing := s.CreateKey(t, "feed", "BILLING", "")
	cust := s.CreateCustomer(t, a, "Acme", false)
	s.SetCredit(t, a, cust, "100")
	var set struct {
		SetNotificationAddresses []struct{ ID string }
	}
	s.Must(t, a, `mutation($c: ID!) { setNotificationAddresses(input: {customerId: $c, addresses: ["finance@acme.test"]}) { id } }`, map[string]any{"c": cust}, &set)
	record(t, s, billing, event("i1", cust, "80"))
	mail.WaitFor(t, 1)
	log := emailLog(t, s, a, 1)

	s.Fails(t, "NOT_FOUND", b, `mutation($c: ID!) { setNotificationAddresses(input: {customerId: $c, addresses: ["x@b.test"]}) { id } }`, map[string]any{"c": cust})
	s.Fails(t, "NOT_FOUND", b, `query($c: ID!) { notificationAddresses(customerId: $c) { id } }`, map[string]any{"c": cust})
	s.Fails(t, "NOT_FOUND", b, `query($id: ID!) { emailDeliveries(addressId: $id) { totalCount } }`, map[string]any{"id": set.SetNotificationAddresses[0].ID})
	s.Fails(t, "NOT_FOUND", b, `mutation($id: ID!) { resendEmailDelivery(id: $id) { id } }`, map[string]any{"id": log[0].ID})
	var seen struct {
		NotificationAddresses []struct{ ID string }
		EmailDeliveries       struct{ TotalCount int }
	}
	s.Must(t, b, `{ notificationAddresses { id } emailDeliveries { totalCount } }`, nil, &seen)
	if len(seen.NotificationAddresses) != 0 || seen.EmailDeliveries.TotalCount != 0 {
		t.Fatalf("partner B sees %+v", seen)
	}
	// Setting the list again keeps the addresses that stay (their ids, and
	// the e-mails queued for them).
	var again struct {
		SetNotificationAddresses []struct{ ID, Address string }
	}
	s.Must(t, a, `mutation($c: ID!) { setNotificationAddresses(input: {customerId: $c, addresses: ["billing@acme.test", "finance@acme.test"]}) { id address } }`,
		map[string]any{"c": cust}, &again)
	if len(again.SetNotificationAddresses) != 2 || !slices.ContainsFunc(again.SetNotificationAddresses, func(x struct{ ID, Address string }) bool {
		return x.ID == set.SetNotificationAddresses[0].ID && x.Address == "finance@acme.test"
	}) {
		t.Fatalf("set again: %+v, want finance@acme.test to keep id %s", again.SetNotificationAddresses, set.SetNotificationAddresses[0].ID)
	}
	s.Fails(t, "BAD_USER_INPUT", a, `mutation { setNotificationAddresses(input: {addresses: ["not an address"]}) { id } }`, nil)
	s.Fails(t, "BAD_USER_INPUT", a, `mutation { setNotificationAddresses(input: {addresses: ["Ops <ops@a.test>"]}) { id } }`, nil)
	s.Fails(t, "BAD_USER_INPUT", a, `mutation { setNotificationAddresses(input: {addresses: ["ops@[127.0.0.1]"]}) { id } }`, nil)
	// One address, however its domain is spelt.
	var folded struct{ SetNotificationAddresses []struct{ Address string } }
	s.Must(t, a, `mutation { setNotificationAddresses(input: {addresses: ["Ops@Acme.TEST", "Ops@acme.test", "ops@acme.test"]}) { address } }`, nil, &folded)
	if got := folded.SetNotificationAddresses; len(got) != 2 || got[0].Address != "Ops@Acme.TEST" || got[1].Address != "ops@acme.test" {
		t.Fatalf("addresses kept: %+v, want Ops@Acme.TEST and ops@acme.test", got)
	}
}

// Without SMTP_URL e-mail is off: addresses can be set, nothing is queued.
func TestEmailOff(t *testing.T) {
	s, partner, billing, cust := usageSetup(t, testenv.SQLite(t), "100", false)
	var out struct{ EmailEnabled bool }
	s.Must(t, partner, `{ emailEnabled }`, nil, &out)
	if out.EmailEnabled {
		t.Fatal("emailEnabled without a mail server")
	}
	s.Must(t, partner, `mutation { setNotificationAddresses(input: {addresses: ["ops@reseller.test"]}) { id } }`, nil, nil)
	record(t, s, billing, event("o1", cust, "80"))
	time.Sleep(200 * time.Millisecond)
	var log struct{ EmailDeliveries struct{ TotalCount int } }
	s.Must(t, partner, `{ emailDeliveries { totalCount } }`, nil, &log)
	if log.EmailDeliveries.TotalCount != 0 {
		t.Fatalf("%d e-mail deliveries queued with e-mail off", log.EmailDeliveries.TotalCount)
	}
}

// An endpoint disabled for answering 410 Gone raises a notice: listed for
// its partner and e-mailed to the partner's own addresses.
func TestDisabledEndpointNoticesThePartner(t *testing.T) {
	testenv.Stores(t, func(t *testing.T, db *gorm.DB) {
		s, mail := mailServer(t, db)
		_, partner := s.CreatePartner(t, "Reseller", "100000")
		_, other := s.CreatePartner(t, "Other", "100000")
		billing := s.CreateKey(t, "feed", "BILLING", "")
		cust := s.CreateCustomer(t, partner, "Acme", false)
		s.SetCredit(t, partner, cust, "100")
		s.Must(t, partner, `mutation { setNotificationAddresses(input: {addresses: ["ops@reseller.test"]}) { id } }`, nil, nil)
		gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) }))
		defer gone.Close()
		usageHook(t, s, partner, gone.URL)
		alerts := record(t, s, billing, event("n1", cust, "80")).Alerts

		var notices struct {
			PartnerNotices struct {
				TotalCount int
				Nodes      []struct{ Kind, Message string }
			}
		}
		if !testenv.Eventually(10*time.Second, func() bool {
			s.Must(t, partner, `{ partnerNotices { totalCount nodes { kind message } } }`, nil, &notices)
			return notices.PartnerNotices.TotalCount > 0
		}) {
			t.Fatal("no notice of the disabled endpoint")
		}
		n := notices.PartnerNotices.Nodes[0]
		if notices.PartnerNotices.TotalCount != 1 || n.Kind != "WEBHOOK_ENDPOINT_DISABLED" || !strings.Contains(n.Message, gone.URL) ||
			!strings.Contains(n.Message, "410 Gone") {
			t.Fatalf("notices: %+v", notices.PartnerNotices)
		}
		got := mail.WaitFor(t, len(alerts))
		if !testenv.Eventually(10*time.Second, func() bool {
			got = mail.Received()
			return slices.ContainsFunc(got, func(m testenv.Mail) bool {
				return m.Header("Subject") == "A webhook endpoint was disabled" && strings.Contains(m.Body(), gone.URL)
			})
		}) {
			t.Fatalf("no notice e-mail among %d", len(got))
		}
		s.Must(t, other, `{ partnerNotices { totalCount nodes { kind message } } }`, nil, &notices)
		if notices.PartnerNotices.TotalCount != 0 {
			t.Fatal("another partner sees the notice")
		}
	})
}
