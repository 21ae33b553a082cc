package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is a message an SMTPServer accepted.
type Mail struct {
	From string
	To   []string
	// Data is the message as sent: headers and body.
	Data string
	// TLS tells whether the session was encrypted (STARTTLS) when it was sent.
	TLS bool
}

// Header returns the value of a header of the message.
func (m Mail) Header(name string) string {
	head, _, _ := strings.Cut(strings.ReplaceAll(m.Data, "\r\n", "\n"), "\n\n")
	for line := range strings.SplitSeq(head, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Body returns the message's body, decoded from quoted-printable when it is.
func (m Mail) Body() string {
	_, body, _ := strings.Cut(strings.ReplaceAll(m.Data, "\r\n", "\n"), "\n\n")
	if !strings.EqualFold(m.Header("Content-Transfer-Encoding"), "quoted-printable") {
		return body
	}
	b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(body)))
	if err != nil {
		return body
	}
	return string(b)
}

// SMTPServer is a real SMTP server (emersion/go-smtp) on loopback that offers
// STARTTLS with a certificate of its own, takes AUTH PLAIN only over TLS, and
// keeps what it accepts.
type SMTPServer struct {
	// URL is its SMTP_URL (with the user and password it takes).
	URL *url.URL
	// TLS is a client configuration that trusts its certificate.
	TLS *tls.Config

	mu       sync.Mutex
	received []Mail
	// Refuse, when set, answers each message: an error refuses it (a
	// *smtp.SMTPError chooses the code).
	Refuse func(to string, n int) error
	count  map[string]int
}

// NewSMTPServer starts an SMTP server for the test.
func NewSMTPServer(t testing.TB) *SMTPServer {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &SMTPServer{TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, count: map[string]int{}}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.URL = &url.URL{Scheme: "smtp", User: url.UserPassword("alerts", "s3cret"), Host: ln.Addr().String()}
	return s
}

// Received returns the messages accepted so far.
func (s *SMTPServer) Received() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.received...)
}

// WaitFor waits until n messages were accepted and returns them.
func (s *SMTPServer) WaitFor(t testing.TB, n int) []Mail {
	t.Helper()
	var got []Mail
	if !Eventually(15*time.Second, func() bool { got = s.Received(); return len(got) >= n }) {
		t.Fatalf("%d e-mails arrived, want %d", len(got), n)
	}
	return got
}

type backend struct{ s *SMTPServer }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s     *SMTPServer
	conn  *smtp.Conn
	authd bool
	from  string
	to    []string
}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alerts" || pass != "s3cret" {
			return errors.New("invalid credentials")
		}
		x.authd = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if !x.authd {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	refuse := x.s.Refuse
	x.s.count[to]++
	n := x.s.count[to]
	x.s.mu.Unlock()
	if refuse != nil {
		if err := refuse(to, n); err != nil {
			return err
		}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, secure := x.conn.TLSConnectionState()
	x.s.mu.Lock()
	x.s.received = append(x.s.received, Mail{From: x.from, To: x.to, Data: string(b), TLS: secure})
	x.s.mu.Unlock()
	return nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
