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
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/gochat/chat/internal/testbin"
)

var (
	serverBin string
	clientBin string
	chromium  string // "" when absent: the tests skip
)

func TestMain(m *testing.M) {
	testbin.Main(m, testbin.Suite{
		Name:     "browser",
		Programs: []testbin.Program{{Path: &serverBin, Pkg: "./cmd/gochatd"}, {Path: &clientBin, Pkg: "./cmd/gochat"}},
		Setup: func() (bool, error) {
			if testing.Short() {
				return false, nil
			}
			chromium = findChromium()
			if chromium == "" && os.Getenv("CI") != "" {
				return false, errors.New("no chromium under CI: .ci/run should have installed it (apt-get install -y chromium)")
			}
			return chromium != "", nil // without it every test skips itself
		},
	})
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
