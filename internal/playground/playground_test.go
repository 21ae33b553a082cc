package playground_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudreseller/credit/internal/playground"
)

// A browser that takes gzip gets every file of the page gzipped, and it
// unpacks to the file that was built; others get the file as it is.
func TestFilesAreServedCompressed(t *testing.T) {
	if !playground.Built() {
		t.Skip("needs the playground build (go generate ./internal/playground)")
	}
	mux := http.NewServeMux()
	playground.Register(mux, false)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	assets, err := filepath.Glob("dist/graphiql/assets/*.js")
	if err != nil || len(assets) == 0 {
		t.Fatalf("no assets built: %v", err)
	}
	for _, file := range append(assets[:2], "dist/graphiql/index.html") {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		url := srv.URL + "/" + strings.TrimPrefix(filepath.ToSlash(file), "dist/graphiql/")
		if strings.HasSuffix(url, "index.html") {
			url = srv.URL + "/"
		}
		for _, gz := range []bool{true, false} {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if gz {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			// The transport would unpack it itself: read what was sent.
			res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			var body io.Reader = res.Body
			if res.Header.Get("Content-Encoding") == "gzip" != gz {
				t.Fatalf("%s, gzip accepted %v: Content-Encoding %q", url, gz, res.Header.Get("Content-Encoding"))
			}
			if gz {
				if body, err = gzip.NewReader(res.Body); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := io.ReadAll(body)
			res.Body.Close()
			if res.StatusCode != 200 || string(got) != string(want) {
				t.Fatalf("%s, gzip %v: %d, %d bytes, want the %d of %s", url, gz, res.StatusCode, len(got), len(want), file)
			}
		}
	}
}

// The page may not be framed by another site (a page that frames it could
// steer a visitor's clicks while a key sits in its Headers tab), and no file
// of it is sniffed as another type.
func TestPageRefusesFraming(t *testing.T) {
	for _, cdn := range []bool{true, false} {
		if !cdn && !playground.Built() {
			continue // the CDN page only: the build is CI's
		}
		mux := http.NewServeMux()
		playground.Register(mux, cdn)
		srv := httptest.NewServer(mux)
		res, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		srv.Close()
		h := res.Header
		if h.Get("Content-Security-Policy") != "frame-ancestors 'none'" || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("cdn %v: headers %v", cdn, h)
		}
	}
}
