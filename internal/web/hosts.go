package web

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"runtime"
	"strings"
)

// DefaultHosts returns the names and addresses a server listening on
// bound (asked for as flagAddr, "HOST:PORT") is reached as, the default of
// --http-hosts: the name in flagAddr, if it is one; the bound address
// (and "localhost" for a loopback one); for a wildcard address, every
// address of the machine's interfaces, its host name and "localhost".
func DefaultHosts(flagAddr string, bound net.Addr) []string {
	var hosts []string
	if h, _, err := net.SplitHostPort(flagAddr); err == nil && h != "" {
		if _, err := netip.ParseAddr(h); err != nil {
			hosts = append(hosts, h)
		}
	}
	var ip netip.Addr
	if ta, ok := bound.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		hosts = append(hosts, ip.String())
		if ip.IsLoopback() {
			hosts = append(hosts, "localhost")
		}
		return hosts
	}
	hosts = append(hosts, "localhost")
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok {
				hosts = append(hosts, x.Unmap().String())
			}
		}
	}
	return hosts
}

// checkHostPattern reports a --http-hosts pattern that can match nothing.
func checkHostPattern(p string) error {
	if p == "" {
		return errors.New("web: empty host pattern")
	}
	if strings.ContainsAny(p, "/ ") {
		return fmt.Errorf("web: bad host pattern %q: a host name or address, no scheme, path or port", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("web: bad host pattern %q: %w", p, err)
	}
	return nil
}

// hostAllowed reports whether a request's Host header names this server:
// one of cfg.Hosts, compared without the port, ignoring case (addresses
// compared as addresses). A page of another site whose name is made to
// resolve to this server (DNS rebinding) sends its own name as Host, and
// its Origin matches it, so the origin check alone lets it in (issue 23).
// No Hosts: every Host is allowed.
func (g *Gateway) hostAllowed(host string) bool {
	if len(g.cfg.Hosts) == 0 {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	if host == "" {
		return false
	}
	for _, p := range g.cfg.Hosts {
		p = strings.TrimSuffix(strings.ToLower(p), ".")
		if a, err := netip.ParseAddr(p); err == nil {
			p = a.Unmap().String()
		}
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

// MetricsHandler returns h, asking for the bearer token in tokenFile (its
// content, surrounding white space trimmed, as Prometheus reads a
// credentials_file) when tokenFile is not empty. The file must be readable
// by its owner alone, as the cluster's secret file: a token others can
// read protects nothing. Requests without the token get 401.
func MetricsHandler(h http.Handler, tokenFile string) (http.Handler, error) {
	if tokenFile == "" {
		return h, nil
	}
	token, err := readSecret(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--metrics-token-file: %w", err)
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		// The scheme is case-insensitive (RFC 9110 section 11.1).
		if len(got) >= 7 && strings.EqualFold(string(got[:7]), "bearer ") {
			copy(got, "Bearer ")
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

// readSecret reads a token from name, refusing a file that its group or
// others may read or write.
func readSecret(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("%s is open to others (mode %v): chmod 600 %s", name, perm, name)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", fmt.Errorf("%s: the token must be one word of printable ASCII", name)
	}
	return token, nil
}

// ServeMetrics serves h at /metrics on ln, with lim and the HTTP server's
// timeouts and body refusal (NewHTTPServer), in a goroutine that ends when
// the returned server is closed.
func ServeMetrics(ln net.Listener, h http.Handler, lim Limits, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	hs := NewHTTPServer(mux, logger)
	go hs.Serve(LimitListener(ln, lim, logger))
	return hs
}
