package playground_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloudreseller/credit/internal/alerts/email"
	"github.com/cloudreseller/credit/internal/playground"
	"github.com/cloudreseller/credit/internal/testenv"
)

// chromium is Debian's browser, which .ci/run installs; the test never uses a
// browser that a tool downloads.
const chromium = "/usr/bin/chromium"

// need skips the test when what it needs is missing, except in CI, where a
// missing browser or playground build is a failure.
func need(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := exec.LookPath(chromium); err != nil {
		missing = chromium + " (apt-get install chromium)"
	} else if !playground.Built() {
		missing = "the playground build (go generate ./internal/playground)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI needs %s", missing)
	}
	t.Skipf("needs %s", missing)
}

// browse starts Debian's Chromium, headless, with every host but the
// server's unreachable, and returns a tab.
func browse(t *testing.T, serverURL string) context.Context {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.WindowSize(1400, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		// The network is the server: any other name resolves nowhere.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE "+u.Hostname()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// replaceText focuses a Monaco editor, selects all, and pastes text (a paste
// event with the text on its clipboard data, as a user's paste delivers it).
func replaceText(editor chromedp.CSS, text string) chromedp.Action[chromedp.Void] {
	paste := fmt.Sprintf(`(() => {
		const area = document.querySelector(%q + ' textarea');
		area.focus();
		const data = new DataTransfer();
		data.setData('text/plain', %q);
		area.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
		return true;
	})()`, string(editor), text)
	return chromedp.Steps(
		chromedp.Click(editor+" .view-lines"),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](paste)(ctx, t)
			return err
		}),
	)
}

// responseContains waits until GraphiQL's response pane shows every string.
func responseContains(wants ...string) chromedp.Action[chromedp.Void] {
	conds := make([]string, len(wants))
	for i, w := range wants {
		conds[i] = fmt.Sprintf("text.includes(%q)", w)
	}
	js := `(() => { const el = document.querySelector('.graphiql-response .view-lines');
		if (!el) return false; const text = el.innerText.replace(/\u00a0/g, ' ');
		return ` + strings.Join(conds, " && ") + `; })()`
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(15*time.Second))(ctx, t)
		return err
	})
}

const (
	queryEditor   = chromedp.CSS(`.graphiql-query-editor .monaco-editor`)
	headersEditor = chromedp.CSS(`.monaco-editor[data-uri$="request-headers.json"]`)
	runButton     = chromedp.CSS(`.graphiql-execute-button`)
)

// A developer opens the playground with the network cut off but for the
// server, pastes a key into the headers, lists customers, and watches a live
// alert arrive on a subscription. The key stays out of the browser's storage.
func TestPlaygroundOffline(t *testing.T) {
	need(t)
	s := testenv.NewServer(t, testenv.SQLite(t))
	_, partner := s.CreatePartner(t, "Reseller", "1000")
	billing := s.CreateKey(t, "feed", "BILLING", "")
	cust := s.CreateCustomer(t, partner, "Playground Customer", false)
	s.SetCredit(t, partner, cust, "100")

	ctx := browse(t, s.URL)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	screenshot := func(name string) {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Logf("screenshot: %v", err)
			return
		}
		dir := os.Getenv("CI_ARTIFACTS")
		if dir == "" {
			dir = filepath.Join(os.TempDir(), "credit-artifacts")
		}
		os.MkdirAll(dir, 0o755)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, png, 0o644); err == nil {
			t.Logf("screenshot: %s", path)
		}
	}
	defer func() {
		if t.Failed() {
			screenshot("playground-failed.png")
		}
	}()

	err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(queryEditor),
		chromedp.WaitVisible(headersEditor),
		replaceText(headersEditor, `{"Authorization": "Bearer `+partner+`"}`),
		replaceText(queryEditor, `query Dashboard { customers { totalCount edges { node { id name available status } } } }`),
		chromedp.Click(runButton),
		responseContains(`"totalCount": 1`, "Playground Customer", `"available": "100.00"`),
	)
	if err != nil {
		t.Fatalf("customers query in the playground: %v", err)
	}

	// A subscription over graphql-ws, signed in with the same headers.
	err = chromedp.Do(ctx,
		replaceText(queryEditor, `subscription Live { alerts { id threshold usagePercent customer { id name } } }`),
		chromedp.Sleep(500*time.Millisecond), // the editor parses what was pasted
		chromedp.Click(runButton),
	)
	if err != nil {
		t.Fatalf("subscription in the playground: %v", err)
	}
	waitListeners(t, s, 1)
	var out struct{ RecordUsage struct{ Accepted int } }
	s.Must(t, billing, `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
		map[string]any{"in": map[string]any{"events": []map[string]any{{"eventId": "pg-1", "customerId": cust, "amount": "80"}}}}, &out)
	if err := chromedp.Do(ctx, responseContains(`"threshold": 75`, "Playground Customer")); err != nil {
		t.Fatalf("the live alert did not reach the playground: %v", err)
	}
	screenshot("playground.png")

	// Every request went to the server; the key is in no storage.
	resources, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(e => e.name)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resources {
		if !strings.HasPrefix(r, s.URL+"/") && !strings.HasPrefix(r, "ws"+strings.TrimPrefix(s.URL, "http")) && !strings.HasPrefix(r, "data:") && !strings.HasPrefix(r, "blob:") {
			t.Errorf("the page loaded %s from elsewhere", r)
		}
	}
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({local: {...localStorage}, session: {...sessionStorage}})`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, partner) {
		t.Errorf("the key is kept in the browser's storage: %s", stored)
	}
}

func waitListeners(t *testing.T, s *testenv.Server, n int) {
	t.Helper()
	if !testenv.Eventually(10*time.Second, func() bool { return s.Alerts.Listeners() == n }) {
		t.Fatalf("%d listeners, want %d", s.Alerts.Listeners(), n)
	}
}

// The link of an alert e-mail opens the playground on the query that shows
// its customer: with the key pasted into the headers, running it shows the
// customer.
func TestPlaygroundOpensTheLinkOfAnAlertEmail(t *testing.T) {
	need(t)
	s := testenv.NewServer(t, testenv.SQLite(t))
	_, partner := s.CreatePartner(t, "Reseller", "1000")
	cust := s.CreateCustomer(t, partner, "Linked Customer", false)
	s.SetCredit(t, partner, cust, "100")
	id, err := strconv.ParseUint(cust, 10, 64)
	if err != nil {
		t.Fatal(err)
	}

	ctx := browse(t, s.URL)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = chromedp.Do(ctx,
		chromedp.Navigate(email.PlaygroundLink(s.URL, uint(id))),
		chromedp.WaitVisible(queryEditor),
		chromedp.WaitVisible(headersEditor),
		replaceText(headersEditor, `{"Authorization": "Bearer `+partner+`"}`),
		chromedp.Click(runButton),
		responseContains(`"customer": {`, `"name": "Linked Customer"`, `"available": "100.00"`, `"status": "ACTIVE"`),
	)
	if err != nil {
		t.Fatalf("the e-mail's link in the playground: %v", err)
	}
}
