package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// httpExchange sends req on a new connection to addr and returns the answer's
// status, or 0 if the server closed the connection without one, and
// whether the server closed the connection after it.
func httpExchange(t *testing.T, addr, req string, keep bool) (status int, closed bool, c net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("%s: neither answered nor closed", addr)
		}
		return 0, true, c
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if keep {
		return resp.StatusCode, false, c
	}
	_, err = io.ReadAll(br)
	if err != nil {
		t.Fatalf("%s: after %d the connection stays open: %v", addr, resp.StatusCode, err)
	}
	return resp.StatusCode, true, c
}

var (
	metricsLogRE = regexp.MustCompile(`msg="serving metrics" addr=http://(127\.0\.0\.1:\d+)/metrics`)
	webLogRE     = regexp.MustCompile(`msg="serving the web client" addr=http://(127\.0\.0\.1:\d+)/`)
)

// TestHTTPListeners (issue 23, items 13 and 15), through the real server:
// on the metrics and web ports a request declaring a body it never sends
// is answered 413 and let go; one address holds at most
// --max-conns-per-ip connections; /metrics asks for the token of
// --metrics-token-file, and a token file others may read is refused.
func TestHTTPListeners(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--metrics-addr", "127.0.0.1:0", "--metrics-token-file", token,
		"--http-addr", "127.0.0.1:0", "--max-conns-per-ip", "3", "--limit-loopback")
	find := func(re *regexp.Regexp, what string) string {
		line := srv.proc.errs.waitAny(t, timeout, what, re.MatchString)
		return re.FindStringSubmatch(line)[1]
	}
	metrics, web := find(metricsLogRE, "the metrics address"), find(webLogRE, "the web address")

	get := "GET /metrics HTTP/1.1\r\nHost: " + metrics + "\r\n"
	// Each exchange before the three below ends with the connection
	// closed by the server, which frees its place before the close.
	if st, _, _ := httpExchange(t, metrics, get+"Connection: close\r\n\r\n", false); st != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", st)
	}
	for _, tc := range []struct{ addr, path string }{{metrics, "/metrics"}, {web, "/"}} {
		req := "GET " + tc.path + " HTTP/1.1\r\nHost: " + tc.addr + "\r\nContent-Length: 100\r\n\r\n"
		if st, closed, _ := httpExchange(t, tc.addr, req, false); st != http.StatusRequestEntityTooLarge || !closed {
			t.Errorf("%s%s with a body never sent: %d, closed %v", tc.addr, tc.path, st, closed)
		}
	}

	// Three connections held, answered; the fourth is closed unanswered.
	auth := get + "Authorization: Bearer e2e-token\r\n\r\n"
	for i := range 3 {
		if st, _, _ := httpExchange(t, metrics, auth, true); st != http.StatusOK {
			t.Fatalf("connection %d: /metrics with the token: %d", i+1, st)
		}
	}
	if st, closed, _ := httpExchange(t, metrics, auth, true); st != 0 || !closed {
		t.Errorf("a fourth connection from one address: %d", st)
	}

	// A token file others may read: the server refuses to start.
	loose := filepath.Join(dir, "loose")
	if err := os.WriteFile(loose, []byte("e2e-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o644)
	p := startProc(t, "server(loose token)", serverBin, dir, []string{"-a", "127.0.0.1", "-p", "0", "--metrics-addr", "127.0.0.1:0", "--metrics-token-file", loose})
	p.expectExit(t, 1, timeout)
	if line := strings.Join(p.errs.remainingAll(), "\n"); !strings.Contains(line, "chmod 600") {
		t.Errorf("the refusal does not say what to do: %q", line)
	}
}
