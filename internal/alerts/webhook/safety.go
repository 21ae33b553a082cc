package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"code.dny.dev/ssrf"

	"github.com/cloudreseller/credit/internal/errs"
)

// checkURL refuses an endpoint URL that is not https (http only when
// insecure is allowed), has credentials or a fragment, or whose host resolves
// to an address a webhook must not reach (unless private is allowed).
func checkURL(ctx context.Context, raw string, o Options) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || !u.IsAbs():
		return nil, errs.E(errs.BadUserInput, "url must be an absolute https URL")
	case len(raw) > 2000:
		return nil, errs.E(errs.BadUserInput, "url must be at most 2,000 characters")
	case u.Scheme != "https" && !(u.Scheme == "http" && o.AllowInsecure):
		return nil, errs.E(errs.BadUserInput, "url must use https (http only with WEBHOOK_ALLOW_INSECURE=true)")
	case u.User != nil || u.Fragment != "":
		return nil, errs.E(errs.BadUserInput, "url must not carry credentials or a fragment")
	}
	if o.AllowPrivate {
		return u, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil || len(addrs) == 0 {
		return nil, errs.E(errs.BadUserInput, "url: host %q does not resolve", u.Hostname())
	}
	for _, a := range addrs {
		if forbidden(a) {
			return nil, errs.E(errs.BadUserInput, "url: host %q resolves to %s, which is not a public address (loopback, private, link-local, metadata or another special-purpose range)", u.Hostname(), a.Unmap())
		}
	}
	return u, nil
}

// guard refuses every address outside what IANA's special-purpose
// registries leave public: loopback, private, link-local (cloud metadata
// services live there), shared, documentation, benchmarking, reserved and
// multicast ranges, and the IPv6 forms that reach IPv4 inside them (NAT64,
// 6to4). code.dny.dev/ssrf keeps that list in step with the registries,
// which a list written here would not. Endpoints may use any port.
var guard = ssrf.New(ssrf.WithAnyPort())

// forbidden tells an address a webhook must not reach. An IPv4 address the
// resolver hands back in its IPv6-mapped form is judged, and named, as IPv4.
func forbidden(a netip.Addr) bool {
	return guard.SafeAddr(a.Unmap()) != nil
}

// errForbiddenAddress is a connection refused by the dialer's check.
var errForbiddenAddress = errors.New("the endpoint resolves to an address that is not public (loopback, private, link-local, metadata or another special-purpose range)")

// guardedDialer checks every address the client connects to, at connect time:
// a host that resolved to a public address at registration and to a private
// one now (DNS rebinding) is refused.
func guardedDialer(o Options) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if o.AllowPrivate {
		return d
	}
	d.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("dial %s: %w", address, err)
		}
		if forbidden(ap.Addr()) {
			return errForbiddenAddress
		}
		return nil
	}
	return d
}
