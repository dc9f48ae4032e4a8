package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/testcert"
)

// TestPage: the page and its files are served with the security headers;
// nothing else is.
func TestPage(t *testing.T) {
	st := startStack(t, server.Config{MaxFileSize: 5 << 20}, Config{MaxFileSize: 5 << 20})
	tests := []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8", "'use strict';"},
		{"GET", "/codec.js", 200, "text/javascript; charset=utf-8", "globalThis.chatCodec"},
		{"GET", "/style.css", 200, "text/css; charset=utf-8", ":root"},
		{"GET", "/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/config.json", 200, "application/json", `{"maxFileSize":5242880}`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/index.html", 404, "", ""},
		{"GET", "/../go.mod", 404, "", ""},
		{"GET", "/nothing", 404, "", ""},
		{"POST", "/", 405, "", ""},
		{"GET", Path, 426, "", ""}, // not an upgrade
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, st.httpURL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
			if tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tc.contentType)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
		})
	}
}

// TestPageHasNoInlineCode: the CSP forbids inline script and style, so the
// page must have none (it would silently not run).
func TestPageHasNoInlineCode(t *testing.T) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onload=", " onsubmit=", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
	for _, name := range []string{"app.js", "codec.js"} {
		js, err := static.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(string(js), bad) {
				t.Errorf("%s uses %s: peers' text must go in as text", name, bad)
			}
		}
	}
}

// TestIdleAfterWriteDeadline: a write deadline left set after a write
// completed never ends an idle connection (a WebSocket write cut in the
// middle ends the connection, so the adapter must tell the two apart).
func TestIdleAfterWriteDeadline(t *testing.T) {
	const stall = 200 * time.Millisecond
	st := startStack(t, server.Config{StallTimeout: stall}, Config{})
	w := st.joinedWS(t, "w") // the list's write set a deadline of now + stall
	// Stay idle well past the deadline: nothing is waited for here, the
	// point is that nothing happens.
	time.Sleep(5 * stall)
	w.Write(sendMessage([]string{"w"}, "still here"))
	if got := string(w.ExpectType(protocol.ForwardMessage)); got != "1 w still here" {
		t.Fatalf("got %q", got)
	}
}

// TestForwardedFor: the client's address behind trusted proxies.
func TestForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		proxies []string
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies", nil, "192.0.2.1:5000", []string{"203.0.113.7"}, "192.0.2.1:5000"},
		{"untrusted peer", []string{"10.0.0.0/8"}, "192.0.2.1:5000", []string{"203.0.113.7"}, "192.0.2.1:5000"},
		{"trusted peer", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"203.0.113.7"}, "203.0.113.7:5000"},
		{"chain of proxies", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"198.51.100.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7:5000"},
		{"several headers", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"198.51.100.1", "203.0.113.7"}, "203.0.113.7:5000"},
		{"only proxies", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"10.0.0.1"}, "10.1.2.3:5000"},
		{"garbage", []string{"10.0.0.0/8"}, "10.1.2.3:5000", []string{"203.0.113.7, <script>"}, "10.1.2.3:5000"},
		{"no header", []string{"10.0.0.0/8"}, "10.1.2.3:5000", nil, "10.1.2.3:5000"},
		{"IPv6", []string{"::1"}, "[::1]:5000", []string{"2001:db8::1"}, "[2001:db8::1]:5000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			for _, p := range tc.proxies {
				pp, err := ParseProxy(p)
				if err != nil {
					t.Fatal(err)
				}
				cfg.TrustedProxies = append(cfg.TrustedProxies, pp)
			}
			g, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := g.clientAddr(r).String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestFlags: the flags take lists and refuse bad values at parse time.
func TestFlags(t *testing.T) {
	tests := []struct {
		args    []string
		ok      bool
		origins []string
		proxies []netip.Prefix
	}{
		{[]string{"--http-addr", "127.0.0.1:0"}, true, nil, nil},
		{[]string{"--http-allow-origin", "a.example,*.b.example", "--http-allow-origin=https://c.example"}, true, []string{"a.example", "*.b.example", "https://c.example"}, nil},
		{[]string{"--http-allow-origin", "[bad"}, false, nil, nil},
		{[]string{"--http-allow-origin", ""}, false, nil, nil},
		{[]string{"--http-trusted-proxy", "10.0.0.0/8,127.0.0.1"}, true, nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}},
		{[]string{"--http-trusted-proxy", "10.0.0.1/8"}, true, nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{[]string{"--http-trusted-proxy", "proxy.example"}, false, nil, nil},
		{[]string{"--http-trusted-proxy", "10.0.0.0/33"}, false, nil, nil},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := AddFlags(fs)
			err := fs.Parse(tc.args)
			if (err == nil) != tc.ok {
				t.Fatalf("parse: %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if strings.Join(f.AllowOrigins, " ") != strings.Join(tc.origins, " ") {
				t.Errorf("origins %q, want %q", f.AllowOrigins, tc.origins)
			}
			if len(f.TrustedProxies) != len(tc.proxies) {
				t.Fatalf("proxies %v, want %v", f.TrustedProxies, tc.proxies)
			}
			for i := range tc.proxies {
				if f.TrustedProxies[i] != tc.proxies[i] {
					t.Errorf("proxy %d: %v, want %v", i, f.TrustedProxies[i], tc.proxies[i])
				}
			}
		})
	}
}

// TestTLS: with a certificate, Start serves the page over HTTPS and the
// endpoint over WSS, and the chat works through it.
func TestTLS(t *testing.T) {
	tc := testcert.New(t)
	cert, pool := tc.TLS, tc.Pool
	out := chattest.NewLineLog()
	srv := server.New(server.Config{Stdout: out})
	f := &Flags{Addr: "127.0.0.1:0"}
	served := make(chan struct{})
	front, err := f.Start(func(ln net.Listener) error {
		defer close(served)
		return srv.Serve(ln)
	}, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, 0, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
		front.Stop()
	}()
	base := "https://" + front.Addr().String()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(base + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var pc pageConfig
	json.NewDecoder(resp.Body).Decode(&pc)
	resp.Body.Close()
	if pc.MaxFileSize != protocol.DefaultMaxFileSize {
		t.Errorf("config.json maxFileSize %d", pc.MaxFileSize)
	}
	if resp.TLS == nil || resp.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("TLS state %v: want TLS without HTTP/2", resp.TLS)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+front.Addr().String()+Path, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	p := newPeer(t, "secure", nc)
	p.join()
	out.Wait(t, "join: secure", 1)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestWriteOrder: small writes (coalesced) and large ones (sent at once)
// arrive in order, and CloseWrite sends what is pending before the close.
func TestWriteOrder(t *testing.T) {
	conns := make(chan *wsConn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hijackWriter{ResponseWriter: w}
		ws, err := websocket.Accept(hw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- newWSConn(ws, hw.raw, hw.br, stringAddr(r.RemoteAddr))
	}))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	defer client.Close()
	c := <-conns

	rng := mrand.New(mrand.NewPCG(3, 4))
	var want []byte
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client) // until the close frame
		got <- b
	}()
	for range 500 {
		n := rng.IntN(200)
		if rng.IntN(20) == 0 {
			n = directWrite + rng.IntN(3*directWrite)
		}
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		want = append(want, p...)
		c.SetWriteDeadline(time.Now().Add(waitTimeout))
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("got %d bytes, want %d; equal prefix %d", len(b), len(want), commonPrefix(b, want))
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
