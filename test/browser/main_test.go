// Package browser tests the web client in a real browser: it builds
// cmd/gochatd and cmd/gochat, starts the server with --http-addr, and
// drives headless Chromium (the Debian package chromium) with chromedp
// against it, beside terminal clients.
//
//	go test -race -count=1 ./test/browser/
//
// Without Chromium the tests skip, saying so, except under CI (CI set),
// where a missing browser fails the run: .ci/run installs it. CHROMIUM
// names another binary. With -short the suite is skipped.
// UPDATE_SCREENSHOTS=1 rewrites the screenshots in docs/ (TestBrowserScreenshots).
package browser

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/testbin"
)

var (
	serverBin string
	clientBin string
	chromium  string // "" when absent: the tests skip
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		chromium = findChromium()
		if chromium == "" && os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "browser: no chromium under CI: .ci/run should have installed it (apt-get install -y chromium)")
			os.Exit(1)
		}
	}
	if testing.Short() || chromium == "" {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "gochat-browser-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "gochatd")
	clientBin = filepath.Join(dir, "gochat")
	for _, b := range []struct{ dst, pkg string }{{serverBin, "./cmd/gochatd"}, {clientBin, "./cmd/gochat"}} {
		if err := testbin.Build(b.dst, b.pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "browser: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// findChromium returns the browser to drive: $CHROMIUM, or the first of
// the usual names on PATH.
func findChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needBrowser skips t when the suite cannot run.
func needBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests skipped with -short")
	}
	if chromium == "" {
		t.Skip("no chromium on PATH (apt-get install chromium, or set CHROMIUM): browser tests skipped")
	}
}
