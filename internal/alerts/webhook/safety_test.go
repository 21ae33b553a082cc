package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Endpoints must be https, and never on an address inside the platform's
// network: refused at registration (by what the host resolves to) and at each
// connection (a name that resolves elsewhere later: DNS rebinding).
func TestEndpointSafety(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		url  string
		opts Options
		want string // "" accepted
	}{
		{"http://example.com/hook", Options{}, "https"},
		{"https://127.0.0.1/hook", Options{}, "not a public address"},
		{"https://[::1]:8443/hook", Options{}, "not a public address"},
		{"https://169.254.169.254/latest/meta-data", Options{}, "resolves to 169.254.169.254, which is not a public address"},
		{"https://10.1.2.3/hook", Options{}, "not a public address"},
		{"https://192.168.0.10/hook", Options{}, "not a public address"},
		{"https://100.64.0.1/hook", Options{}, "not a public address"},
		{"https://localhost/hook", Options{}, "not a public address"},
		{"https://user:pw@93.184.215.14/hook", Options{}, "credentials"},
		{"/relative", Options{}, "absolute"},
		// Addresses no public endpoint has (IANA's special-purpose
		// registries), and IPv6 forms that reach IPv4 inside: NAT64 and
		// 6to4 of 127.0.0.1, and an IPv4-mapped one.
		{"https://198.18.0.1/hook", Options{}, "not a public address"},
		{"https://192.0.2.1/hook", Options{}, "not a public address"},
		{"https://240.0.0.1/hook", Options{}, "not a public address"},
		{"https://[64:ff9b::7f00:1]/hook", Options{}, "not a public address"},
		{"https://[2002:7f00:1::1]/hook", Options{}, "not a public address"},
		{"https://[::ffff:10.0.0.1]/hook", Options{}, "not a public address"},
		{"https://[2001:db8::1]/hook", Options{}, "not a public address"},
		{"https://93.184.215.14/hook", Options{}, ""},
		{"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/hook", Options{}, ""},
		{"http://127.0.0.1:8080/hook", Options{AllowInsecure: true, AllowPrivate: true}, ""},
	} {
		_, err := checkURL(ctx, c.url, c.opts)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s refused: %v", c.url, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want a refusal saying %q", c.url, err, c.want)
		}
	}

	// The client refuses to connect to loopback even when the URL got past
	// registration (as a host that later resolves to 127.0.0.1 would).
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hook.Close()
	strict := New(nil, nil, Options{AllowInsecure: true})
	if _, err := strict.client.Get(hook.URL); !errors.Is(err, errForbiddenAddress) {
		t.Fatalf("connecting to %s: %v, want it refused", hook.URL, err)
	}
	relaxed := New(nil, nil, Options{AllowInsecure: true, AllowPrivate: true})
	res, err := relaxed.client.Get(hook.URL)
	if err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
	res.Body.Close()
}
