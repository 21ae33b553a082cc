package webhook

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"
)

// What the delivery log says of an attempt without an answer, for errors as
// the HTTP client wraps them; the live cases (refused, untrusted, plain
// HTTP, closed, timed out) are also tried against real servers in
// internal/httpapi.
func TestNoAnswerSaysWhy(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: "https://hooks.example.com", Err: err} }
	for _, c := range []struct {
		err  error
		want string
	}{
		{wrap(&net.OpError{Op: "dial", Err: errForbiddenAddress}), "the endpoint resolves to an address that is not public (loopback, private, link-local, metadata or another special-purpose range)"},
		{wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "hooks.example.com", IsNotFound: true}}), "the host does not resolve"},
		{wrap(context.DeadlineExceeded), "no answer within 10s"},
		{wrap(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), "connection refused"},
		{wrap(&net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), "the connection closed before an answer"},
		{wrap(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "hooks.example.com"}), "the TLS certificate does not name the endpoint's host"},
		{wrap(x509.CertificateInvalidError{Cert: &x509.Certificate{}, Reason: x509.Expired}), "the TLS certificate has expired or is not valid yet"},
		{wrap(x509.CertificateInvalidError{Cert: &x509.Certificate{}, Reason: x509.NotAuthorizedToSign}), "the TLS certificate is not valid"},
		{wrap(fmt.Errorf("http: %s", httpToHTTPS)), "the endpoint did not answer in TLS (an http server?)"},
		{wrap(errors.New("something else")), "connection failed"},
	} {
		if got := noAnswer(c.err, 10*time.Second); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
}
