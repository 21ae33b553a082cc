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
			return nil, errs.E(errs.BadUserInput, "url: host %q resolves to %s, a loopback, private, link-local or metadata address", u.Hostname(), a)
		}
	}
	return u, nil
}

// forbidden tells an address a webhook must not reach: loopback, private,
// link-local (cloud metadata services live there), unspecified, multicast,
// shared (carrier-grade NAT) and unique-local ranges.
func forbidden(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(a) || netip.MustParsePrefix("0.0.0.0/8").Contains(a)
}

// errForbiddenAddress is a connection refused by the dialer's check.
var errForbiddenAddress = errors.New("the endpoint resolves to a loopback, private, link-local or metadata address")

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
