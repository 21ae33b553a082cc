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
		{"https://127.0.0.1/hook", Options{}, "loopback, private"},
		{"https://[::1]:8443/hook", Options{}, "loopback, private"},
		{"https://169.254.169.254/latest/meta-data", Options{}, "loopback, private"},
		{"https://10.1.2.3/hook", Options{}, "loopback, private"},
		{"https://192.168.0.10/hook", Options{}, "loopback, private"},
		{"https://100.64.0.1/hook", Options{}, "loopback, private"},
		{"https://localhost/hook", Options{}, "loopback, private"},
		{"https://user:pw@203.0.113.9/hook", Options{}, "credentials"},
		{"/relative", Options{}, "absolute"},
		{"https://203.0.113.9/hook", Options{}, ""},
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
