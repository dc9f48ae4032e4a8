package web

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/server"
)

// TestParsePeer: --http-peers takes page URLs of http or https with a
// host and nothing else, and knows each one's origin and WebSocket
// origin.
func TestParsePeer(t *testing.T) {
	for _, tc := range []struct {
		in, url, origin, ws string // url "" means refused
	}{
		{"http://10.0.0.2:8080/", "http://10.0.0.2:8080/", "http://10.0.0.2:8080", "ws://10.0.0.2:8080"},
		{"https://chat2.example.org", "https://chat2.example.org/", "https://chat2.example.org", "wss://chat2.example.org"},
		{"ws://chat2.example.org/", "", "", ""},
		{"https://chat2.example.org/chat/", "", "", ""},
		{"https://u:p@chat2.example.org/", "", "", ""},
		{"https://chat2.example.org/?x=1", "", "", ""},
		{"https:///", "", "", ""},
		{"chat2.example.org", "", "", ""},
		{"", "", "", ""},
	} {
		p, err := parsePeer(tc.in)
		if tc.url == "" {
			if err == nil {
				t.Errorf("%q accepted as %+v", tc.in, p)
			}
			continue
		}
		if err != nil || p.url != tc.url || p.origin != tc.origin || p.ws != tc.ws {
			t.Errorf("%q = %+v, %v; want %s %s %s", tc.in, p, err, tc.url, tc.origin, tc.ws)
		}
	}
}

// TestPeers: a gateway told its peers lists them in config.json, lets the
// page connect to them (connect-src), and takes WebSocket upgrades from
// their pages; other origins are still refused.
func TestPeers(t *testing.T) {
	st := startStack(t, server.Config{}, Config{Peers: []string{"http://127.0.0.1:1/", "https://n3.example.org/"}})
	resp, err := http.Get(st.httpURL + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `"peers":["http://127.0.0.1:1/","https://n3.example.org/"]`; !strings.Contains(string(body), want) {
		t.Errorf("config.json %s, want %s in it", body, want)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' ws://127.0.0.1:1 wss://n3.example.org;") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"http://127.0.0.1:1", true},
		{"https://n3.example.org", true},
		{"http://n3.example.org", false}, // the scheme is part of the origin
		{"https://evil.example", false},
	} {
		h := http.Header{}
		h.Set("Origin", tc.origin)
		p, resp, err := st.tryWS("u", h)
		if err == nil {
			p.NC.Close()
		}
		if tc.ok != (err == nil) {
			t.Errorf("origin %s: %v (%v), want accepted %v", tc.origin, resp, err, tc.ok)
		}
	}
	if _, err := New(Config{Peers: []string{"ftp://x/"}}, nil); err == nil {
		t.Error("a bad peer URL was accepted")
	}
}
