package web

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/server"
)

// startFront starts the web front end as f says, serving a chat server,
// and stops both when t ends. It returns the front end's address.
func startFront(t *testing.T, f *Flags) string {
	t.Helper()
	srv := server.New(server.Config{Stdout: io.Discard})
	served := make(chan struct{})
	front, err := f.Start(func(ln net.Listener) error {
		defer close(served)
		return srv.Serve(ln)
	}, nil, 0, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
		front.Stop()
	})
	return front.Addr().String()
}

// rawHTTP sends req on a new connection to addr and returns the
// connection and a reader of it, its deadline set.
func rawHTTP(t *testing.T, addr, req string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// TestBodyRefused (issue 23, item 13): a request that declares a body no
// endpoint takes is answered 413 and its connection closed at once, body
// sent or not; before, "Content-Length: 100" and nothing after held the
// connection forever.
func TestBodyRefused(t *testing.T) {
	addr := startFront(t, &Flags{Addr: "127.0.0.1:0"})
	tests := []struct{ name, req string }{
		{"length, no body", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"},
		{"length, no body, config", "GET /config.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"},
		{"length, no body, websocket", "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"},
		{"chunked, no body", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"post, part of the body", "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nsome"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, br := rawHTTP(t, addr, tc.req)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", resp.StatusCode)
			}
			// The server closes the connection: the read ends before the
			// test's deadline.
			if _, err := io.ReadAll(br); err != nil {
				t.Fatalf("the connection stays open: %v", err)
			}
		})
	}
	// A request without a body is served as before.
	_, br := rawHTTP(t, addr, "GET /config.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /config.json: status %d", resp.StatusCode)
	}
}

// served reports whether a GET on a new connection to addr is answered.
func served(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	c, br := rawHTTP(t, addr, "GET /config.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("neither served nor closed: %v", err)
		}
		return c, false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, true
}

// TestHTTPConnsPerAddr (issue 23, item 13): one address holds at most
// --max-conns-per-ip HTTP connections, upgraded or not; one more is closed
// at once, and a place freed is taken again.
func TestHTTPConnsPerAddr(t *testing.T) {
	addr := startFront(t, &Flags{Addr: "127.0.0.1:0", Limits: Limits{MaxConnsPerAddr: 2, LimitLoopback: true}})
	first, ok1 := served(t, addr)
	_, ok2 := served(t, addr)
	if !ok1 || !ok2 {
		t.Fatalf("the first two connections were refused")
	}
	if _, ok := served(t, addr); ok {
		t.Fatalf("a third connection from one address was served")
	}
	first.Close()
	// The server notices the close when it reads it: try until it has,
	// each try answered or closed at once.
	deadline := time.Now().Add(waitTimeout)
	for {
		c, ok := served(t, addr)
		c.Close()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the place of a closed connection was never freed")
		}
	}
	// Loopback is exempt unless limited, as for the chat port.
	open := startFront(t, &Flags{Addr: "127.0.0.1:0", Limits: Limits{MaxConnsPerAddr: 1}})
	for range 3 {
		if _, ok := served(t, open); !ok {
			t.Fatal("a loopback connection was refused without LimitLoopback")
		}
	}
}

// upgrade sends a WebSocket handshake naming host to addr and returns the
// status.
func upgrade(t *testing.T, addr, host, origin string) int {
	t.Helper()
	req := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	c, br := rawHTTP(t, addr, req+"\r\n")
	defer c.Close()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHosts (issue 23, item 14): a WebSocket upgrade whose Host is not a
// name the server listens as is refused, even with a matching Origin (DNS
// rebinding); --http-hosts replaces the default.
func TestHosts(t *testing.T) {
	addr := startFront(t, &Flags{Addr: "127.0.0.1:0"})
	_, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct {
		host, origin string
		want         int
	}{
		{"evil.example:" + port, "http://evil.example:" + port, http.StatusForbidden},
		{"evil.example", "", http.StatusForbidden},
		{"127.0.0.1:" + port, "http://127.0.0.1:" + port, http.StatusSwitchingProtocols},
		{"localhost:" + port, "http://localhost:" + port, http.StatusSwitchingProtocols},
		{"LOCALHOST", "", http.StatusSwitchingProtocols},
	} {
		if got := upgrade(t, addr, tc.host, tc.origin); got != tc.want {
			t.Errorf("Host %s, Origin %s: status %d, want %d", tc.host, tc.origin, got, tc.want)
		}
	}

	named := startFront(t, &Flags{Addr: "127.0.0.1:0", Hosts: []string{"chat.example.org", "*.chat.example.org"}})
	for _, tc := range []struct {
		host string
		want int
	}{
		{"chat.example.org", http.StatusSwitchingProtocols},
		{"eu.chat.example.org:443", http.StatusSwitchingProtocols},
		{"chat.example.org.evil.example", http.StatusForbidden},
		{"127.0.0.1", http.StatusForbidden},
	} {
		if got := upgrade(t, named, tc.host, ""); got != tc.want {
			t.Errorf("--http-hosts chat.example.org: Host %s: status %d, want %d", tc.host, got, tc.want)
		}
	}
}

// TestDefaultHosts: the names and addresses a listener is reached as.
func TestDefaultHosts(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	hostname, _ := os.Hostname()
	tests := []struct {
		flag  string
		bound net.Addr
		want  []string
		not   []string
	}{
		{"127.0.0.1:8080", tcp("127.0.0.1:8080"), []string{"127.0.0.1", "localhost"}, []string{hostname}},
		{"localhost:8080", tcp("127.0.0.1:8080"), []string{"127.0.0.1", "localhost"}, nil},
		{"[::1]:8080", tcp("[::1]:8080"), []string{"::1", "localhost"}, nil},
		{"chat.example.org:8080", tcp("192.0.2.7:8080"), []string{"chat.example.org", "192.0.2.7"}, []string{"localhost"}},
		{":8080", tcp("[::]:8080"), []string{"localhost", hostname, "127.0.0.1"}, nil},
	}
	for _, tc := range tests {
		got := DefaultHosts(tc.flag, tc.bound)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("DefaultHosts(%s) = %q, lacks %q", tc.flag, got, w)
			}
		}
		for _, n := range tc.not {
			if slices.Contains(got, n) {
				t.Errorf("DefaultHosts(%s) = %q, has %q", tc.flag, got, n)
			}
		}
	}
}

// TestMetricsToken (issue 23, item 15): with a token file, /metrics asks
// for the bearer token; a token file others may read is refused.
func TestMetricsToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics\n") })
	h, err := MetricsHandler(ok, file)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := ServeMetrics(ln, h, Limits{}, discardLogger())
	defer hs.Close()
	client := &http.Client{Timeout: waitTimeout}
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer s3cret-token-and-more", http.StatusUnauthorized},
		{"Basic czNjcmV0LXRva2Vu", http.StatusUnauthorized},
		{"Bearer s3cret-token", http.StatusOK},
		{"bearer s3cret-token", http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/metrics", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
		if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without a Bearer challenge")
		}
	}

	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"group-readable", "tok\n", 0o640},
		{"world-readable", "tok\n", 0o604},
		{"empty", "\n", 0o600},
		{"two words", "a b\n", 0o600},
	} {
		f := filepath.Join(dir, tc.name)
		if err := os.WriteFile(f, []byte(tc.content), tc.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(f, tc.mode) // whatever the umask
		if _, err := MetricsHandler(ok, f); err == nil {
			t.Errorf("%s token file accepted", tc.name)
		}
	}
	if _, err := MetricsHandler(ok, filepath.Join(dir, "missing")); err == nil {
		t.Errorf("a missing token file accepted")
	}
}

// TestHostsFlag: --http-hosts takes lists and refuses what can match no
// Host header.
func TestHostsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string // nil: refused
	}{
		{[]string{"--http-hosts", "chat.example.org,*.example.net", "--http-hosts=192.0.2.1"}, []string{"chat.example.org", "*.example.net", "192.0.2.1"}},
		{[]string{"--http-hosts", ""}, nil},
		{[]string{"--http-hosts", "https://chat.example.org"}, nil},
		{[]string{"--http-hosts", "[bad"}, nil},
	} {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := AddFlags(fs)
		err := fs.Parse(tc.args)
		if (err == nil) != (tc.want != nil) {
			t.Errorf("%q: parse error %v", tc.args, err)
			continue
		}
		if tc.want != nil && !slices.Equal(f.Hosts, tc.want) {
			t.Errorf("%q: hosts %q, want %q", tc.args, f.Hosts, tc.want)
		}
	}
}
