package web

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientAddr: whatever X-Forwarded-For a trusted proxy passes on, the
// client's address is the peer's or an address of the header that is not
// a trusted proxy, and the port is the peer's.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "198.51.100.1, 203.0.113.7, 10.9.9.9", "10.0.0.1", "", "<script>", "::1, 2001:db8::1", "1.2.3.4,,5.6.7.8", " 1.2.3.4 ", "::ffff:10.0.0.1"} {
		f.Add(s, "10.1.2.3:5000")
	}
	f.Add("203.0.113.7", "[::1]:80")
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	g, err := New(Config{TrustedProxies: proxies}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, xff, remote string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := g.clientAddr(r).String()
		peer, err := netip.ParseAddrPort(remote)
		if err != nil {
			if got != remote {
				t.Fatalf("unparsable peer %q became %q", remote, got)
			}
			return
		}
		ap, err := netip.ParseAddrPort(got)
		if err != nil {
			t.Fatalf("client address %q does not parse: %v", got, err)
		}
		if ap.Port() != peer.Port() {
			t.Fatalf("port %d, want the peer's %d", ap.Port(), peer.Port())
		}
		if ap.Addr() == peer.Addr() || ap.Addr() == peer.Addr().Unmap() {
			return
		}
		if !g.trusted(peer.Addr()) {
			t.Fatalf("untrusted peer %v served as %v", peer, ap)
		}
		if g.trusted(ap.Addr()) {
			t.Fatalf("a trusted proxy %v served as the client", ap)
		}
		found := false
		for h := range strings.SplitSeq(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(h)); err == nil && a.Unmap() == ap.Addr() {
				found = true
			}
		}
		if !found {
			t.Fatalf("client %v is not in the header %q", ap.Addr(), xff)
		}
	})
}
