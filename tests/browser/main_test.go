// Package browser_test drives the page that "salesrank serve" serves at / in a real,
// headless Chromium: it picks a category, pages through it, opens the movers and the
// history, searches a product, uses the page by keyboard alone and at phone width, and
// checks every number it renders against the read API's JSON for the same snapshot.
//
// The tests build the salesrank binary, generate nine days of logs, rank them at every hour
// of the last 26 into a SQLite database and serve it, as an operator would. They skip under
// -short, and skip with a message when no Chromium is installed (Debian: apt-get install
// chromium). SALESRANK_TEST_CHROMIUM names the browser to use and makes the tests
// mandatory: CI sets it, so there a browser that cannot start fails them rather than
// skipping them. SALESRANK_SCREENSHOT=PATH writes a PNG of the page for people to look at
// (the README's docs/page.png).
package browser_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/salesrank/salesrank/internal/testing/testbin"
)

var (
	// binPath is the salesrank binary built by TestMain; empty when it was not built.
	binPath string
	// chromiumPath is the browser the tests drive; empty when none was found.
	chromiumPath string
	// required is set when SALESRANK_TEST_CHROMIUM names the browser: then the tests must
	// run, and a browser that does not start fails them.
	required bool
	// setupSkip says why the tests skip, if they do.
	setupSkip string
)

func TestMain(m *testing.M) {
	flag.Parse()
	chromiumPath, required = findChromium()
	switch {
	case required && chromiumPath == "":
		// Not a skip: CI asked for the browser tests, so a missing browser is a failure.
		fmt.Fprintf(os.Stderr, "tests/browser: SALESRANK_TEST_CHROMIUM=%q is not an executable\n", os.Getenv("SALESRANK_TEST_CHROMIUM"))
		os.Exit(1)
	case testing.Short():
		setupSkip = "skipping the browser tests (a real Chromium and salesrank processes) in -short mode"
	case chromiumPath == "":
		setupSkip = "Chromium is not installed (Debian: apt-get install chromium; or set SALESRANK_TEST_CHROMIUM to a Chrome or Chromium binary); skipping the browser tests"
	}
	if setupSkip != "" {
		os.Exit(m.Run())
	}
	dir, bins, err := testbin.Build("salesrank-browser-bin-", "github.com/salesrank/salesrank/cmd/salesrank")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/browser:", err)
		os.Exit(1)
	}
	binPath = bins[0]
	code := m.Run()
	closeShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// findChromium returns the browser to drive and whether the environment asked for it.
func findChromium() (path string, required bool) {
	if p := os.Getenv("SALESRANK_TEST_CHROMIUM"); p != "" {
		if abs, err := exec.LookPath(p); err == nil {
			return abs, true
		}
		return "", true
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, false
		}
	}
	return "", false
}

// need skips t unless the binary was built and a browser was found.
func need(t *testing.T) {
	t.Helper()
	if setupSkip != "" {
		t.Skip(setupSkip)
	}
}

// The browser is started once per test binary and shared: each test opens its own tab.
var browser struct {
	once     sync.Once
	ctx      context.Context // a chromedp context whose browser runs; tabs derive from it
	cancel   func()
	userData string
	err      error
}

// browserContext returns a context for the shared browser, starting it on first use.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "salesrank-browser-profile-")
		if err != nil {
			browser.err = err
			return
		}
		browser.userData = dir
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(chromiumPath),
			chromedp.Headless,
			chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck,
			chromedp.UserDataDir(dir),
			chromedp.WindowSize(1024, 900),
			// Nothing but the page under test: no update checks, sync, field trials or QUIC
			// probes reaching out from a CI machine.
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-extensions", true),
			chromedp.Flag("disable-default-apps", true),
			chromedp.Flag("lang", "en-US"),
		}
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelBrowser := chromedp.NewContext(allocCtx)
		browser.ctx = ctx
		browser.cancel = func() { cancelBrowser(); cancelAlloc() }
		// The first Run starts the browser; it must have no deadline of its own (see
		// chromedp.Run), and it fails here, once, if the browser cannot start.
		if err := chromedp.Do(ctx); err != nil {
			browser.err = fmt.Errorf("start %s: %w", chromiumPath, err)
		}
	})
	if browser.err != nil {
		// Found but not startable: a failure, whether or not CI asked for the tests.
		t.Fatalf("the browser did not start: %v", browser.err)
	}
	return browser.ctx
}

// closeShared stops the shared browser and servers and removes their files.
func closeShared() {
	if browser.cancel != nil {
		browser.cancel()
	}
	if browser.userData != "" {
		os.RemoveAll(browser.userData)
	}
	sites.close()
}
