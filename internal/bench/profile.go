package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profiled runs measure while the server records a CPU profile of it, and
// writes the profile to dir/<name>.pprof (`go tool pprof` reads it).
func (e *env) profiled(ctx context.Context, dir, name string, clients int, d time.Duration, op func(ctx context.Context, client, i int) (int, error)) (Result, error) {
	seconds := max(1, int(d.Seconds())-1)
	done := make(chan error, 1)
	go func() { done <- e.fetchProfile(ctx, filepath.Join(dir, slug(name)+".pprof"), seconds) }()
	r := measure(ctx, clients, d, op)
	return r, <-done
}

func (e *env) fetchProfile(ctx context.Context, path string, seconds int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", e.pprof, seconds), nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: HTTP %d", res.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// slug makes a file name of a workload's name.
func slug(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
		if b.Len() >= 48 {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
