package email

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/models"
)

// Name is the e-mail channel's name.
func (s *Service) Name() string { return Channel }

// Route routes each alert to its partner's addresses for every customer and
// to its customer's own, each address once: one read, in tx (the fan-out
// transaction).
func (s *Service) Route(tx *gorm.DB, alerts []*models.Alert) ([]delivery.Route, error) {
	cids := make([]uint, len(alerts))
	for i, a := range alerts {
		cids[i] = a.CustomerID // repeats are harmless in IN
	}
	var rows []Address
	if err := tx.Table("notification_addresses").Where("partner_id IN ? AND (customer_id = 0 OR customer_id IN ?)", delivery.PartnersOf(alerts), cids).
		Order("customer_id, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	var routes []delivery.Route
	for _, a := range alerts {
		seen := map[string]bool{}
		for _, r := range rows {
			if r.PartnerID == a.PartnerID && (r.CustomerID == 0 || r.CustomerID == a.CustomerID) && !seen[r.Address] {
				seen[r.Address] = true
				routes = append(routes, delivery.Route{Target: r.ID, Partner: r.PartnerID, Alert: a.ID})
			}
		}
	}
	return routes, nil
}

// RouteNotice sends a notice to its partner's addresses for every customer.
func (s *Service) RouteNotice(tx *gorm.DB, n *delivery.Notice) ([]delivery.Route, error) {
	var ids []uint
	if err := tx.Table("notification_addresses").Where("partner_id = ? AND customer_id = 0", n.PartnerID).Order("id").Pluck("id", &ids).Error; err != nil {
		return nil, err
	}
	routes := make([]delivery.Route, len(ids))
	for i, id := range ids {
		routes[i] = delivery.Route{Target: id, Partner: n.PartnerID, Notice: n.ID}
	}
	return routes, nil
}

// Settle keeps nothing per address: a refused address fails its delivery
// (Final) and stays set, so that the partner sees why in the log.
func (s *Service) Settle(*gorm.DB, map[uint][]delivery.Outcome, time.Time) ([]*delivery.Notice, error) {
	return nil, nil
}

// Sender reads one address and returns what e-mails an alert or notice to
// it: one read of the address for those a worker holds for it.
func (s *Service) Sender(ctx context.Context, target uint) func(*delivery.Message) delivery.Outcome {
	var to []Address
	err := s.db.WithContext(ctx).Table("notification_addresses").Where("id = ?", target).Find(&to).Error
	return func(m *delivery.Message) delivery.Outcome {
		switch {
		case err != nil:
			return delivery.Outcome{Error: "the address could not be read; retrying"}
		case len(to) == 0:
			return delivery.Outcome{Error: "the address was removed", Final: true}
		}
		return s.send(ctx, to[0].Address, m)
	}
}

// send e-mails one alert or notice.
func (s *Service) send(ctx context.Context, to string, m *delivery.Message) delivery.Outcome {
	db := s.db.WithContext(ctx)
	if s.opts.Server == nil {
		return delivery.Outcome{Error: "e-mail is off on the process that tried (SMTP_URL is not set)"}
	}
	letter, id, err := s.letter(db, m)
	if err != nil {
		return delivery.Outcome{Error: "the alert could not be read; retrying"}
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	msg.SetUserAgent(userAgent)
	if err := msg.From(s.opts.From); err != nil {
		return delivery.Outcome{Error: "SMTP_FROM is not an address", Final: true}
	}
	if err := msg.To(to); err != nil {
		return delivery.Outcome{Error: "the address is not usable", Final: true}
	}
	msg.SetMessageIDWithValue(fmt.Sprintf("%s.t%d@%s", id, m.TargetID, domainOf(s.opts.From)))
	msg.SetDate()
	msg.Subject(letter.Subject)
	msg.SetBodyString(mail.TypeTextPlain, letter.Body)
	client, err := mail.NewClient(s.opts.Server.Hostname(), s.clientOptions()...)
	if err != nil {
		return delivery.Outcome{Error: "SMTP_URL is not usable", Final: true}
	}
	start := time.Now()
	err = client.DialAndSendWithContext(ctx, msg)
	o := delivery.Outcome{Latency: time.Since(start)}
	if err == nil {
		ok := 250
		o.Code, o.Delivered = &ok, true
		return o
	}
	return refused(o, err)
}

// userAgent names this service in the User-Agent and X-Mailer of its
// e-mails, as webhooks name it in theirs (the library would name itself and
// its version).
const userAgent = "credit-alerts/1"

// refused fills an outcome from a failed send: a permanent refusal (5xx) of
// the message or address fails the delivery; anything else is retried.
func refused(o delivery.Outcome, err error) delivery.Outcome {
	var se *mail.SendError
	if !errors.As(err, &se) {
		o.Error = "the mail server could not be reached"
		return o
	}
	if code := se.ErrorCode(); code > 0 {
		o.Code = &code
		o.Final = code >= 500 && !se.IsTemp()
	}
	switch se.Reason {
	case mail.ErrSMTPRcptTo:
		o.Error = "the mail server refused the address"
	case mail.ErrSMTPMailFrom:
		o.Error = "the mail server refused the sender (SMTP_FROM)"
	case mail.ErrSMTPData, mail.ErrSMTPDataClose, mail.ErrWriteContent:
		o.Error = "the mail server refused the message"
	default:
		o.Error = "the mail server could not be reached or refused the connection"
	}
	o.Response = serverWords(se.Error())
	return o
}

// serverWords keeps the server's answer from go-mail's error text ("<reason>:
// <answer>, affected recipient(s): …, affected message ID: …").
func serverWords(s string) string {
	if _, rest, ok := strings.Cut(s, ": "); ok {
		s = rest
	}
	s, _, _ = strings.Cut(s, ", affected ")
	return s
}

// clientOptions configure a connection to the SMTP server from SMTP_URL.
func (s *Service) clientOptions() []mail.Option {
	u := s.opts.Server
	opts := []mail.Option{mail.WithTimeout(s.opts.Timeout), mail.WithTLSPolicy(mail.TLSOpportunistic), mail.WithHELO(domainOf(s.opts.From))}
	port, _ := strconv.Atoi(u.Port())
	if u.Scheme == "smtps" {
		opts = append(opts, mail.WithSSL())
		if port == 0 {
			port = 465
		}
	}
	if port == 0 {
		port = 587
	}
	opts = append(opts, mail.WithPort(port))
	if s.opts.TLS != nil {
		opts = append(opts, mail.WithTLSConfig(s.opts.TLS))
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(u.User.Username()), mail.WithPassword(pass))
	}
	return opts
}

// letter writes the e-mail of a message and names it for its Message-ID.
func (s *Service) letter(db *gorm.DB, m *delivery.Message) (Letter, string, error) {
	if m.Notice != nil {
		return NoticeLetter(m.Notice), fmt.Sprintf("n%d", m.Notice.ID), nil
	}
	var names []string
	if err := db.Table("customers").Where("id = ?", m.Alert.CustomerID).Limit(1).Pluck("name", &names).Error; err != nil {
		return Letter{}, "", err
	}
	name := "A customer"
	if len(names) > 0 {
		name = names[0]
	}
	return AlertLetter(m.Alert, name, s.opts.see(m.Alert.CustomerID)), fmt.Sprintf("a%d", m.Alert.ID), nil
}

// see says where a person sees a customer: the dashboard (Link), or the
// playground opened on the query that shows it.
func (o Options) see(customer uint) string {
	switch {
	case o.Link != "":
		return "See the customer: " + strings.ReplaceAll(o.Link, "{id}", strconv.FormatUint(uint64(customer), 10))
	case o.Playground != "":
		return "See the customer in the playground (your PARTNER key goes in its Headers tab): " + PlaygroundLink(o.Playground, customer)
	}
	return "See the customer in the playground: " + strings.Join(strings.Fields(customerQuery(customer)), " ")
}

// PlaygroundLink is the address of the playground at base opened on the
// query that shows a customer (the playground reads ?query=).
func PlaygroundLink(base string, customer uint) string {
	return base + "/?query=" + url.QueryEscape(customerQuery(customer))
}

// customerQuery is the GraphQL query that shows a customer.
func customerQuery(customer uint) string {
	return fmt.Sprintf("query Customer {\n  customer(id: \"%d\") {\n    name credit used available usagePercent status\n  }\n}", customer)
}

// domainOf is the domain of an address ("localhost" when it has none).
func domainOf(address string) string {
	if i := strings.LastIndex(address, "@"); i >= 0 && i < len(address)-1 {
		return strings.Trim(address[i+1:], "> ")
	}
	return "localhost"
}
