package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/server"
)

// Flags holds the web front end's command-line settings.
type Flags struct {
	Addr           string
	AllowOrigins   []string
	TrustedProxies []netip.Prefix
	// Hosts are the --http-hosts patterns; empty: DefaultHosts.
	Hosts []string
	// MetricsTokenFile is --metrics-token-file (see MetricsHandler).
	MetricsTokenFile string
	// Limits bound the HTTP connections of one address (set by the
	// caller from the server's flags); Start adds TrustedProxies to
	// Limits.Exempt.
	Limits Limits
	// Inherited, if set, is a listener a service manager opened for the
	// front end (socket activation, internal/activation): Start serves
	// on it instead of listening on Addr.
	Inherited *net.TCPListener
}

// AddFlags registers the web front end's flags on fs and returns where
// their values go. Bad origin patterns and proxy addresses fail the parse.
func AddFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{}
	// The usage strings are the server's help (cli.Help): "METAVAR\ttext".
	fs.StringVar(&f.Addr, "http-addr", "", "HOST:PORT\tServe the web client and its WebSocket endpoint here (HTTPS and WSS with --tls-cert/--tls-key); off unless given")
	fs.Var(&originsValue{&f.AllowOrigins}, "http-allow-origin", "PATTERN\tAlso accept WebSocket connections from pages of these origins (host or scheme://host patterns, * wildcards; repeatable or comma-separated), defaults to the page's own only")
	fs.Var(&proxiesValue{&f.TrustedProxies}, "http-trusted-proxy", "CIDR\tBelieve X-Forwarded-For from these proxy addresses (IP or CIDR; repeatable or comma-separated), defaults to none")
	fs.Var(&hostsValue{&f.Hosts}, "http-hosts", "PATTERN\tHost names or addresses a WebSocket upgrade's Host header may name (* wildcards; repeatable or comma-separated), defaults to the names and addresses the server listens as")
	fs.StringVar(&f.MetricsTokenFile, "metrics-token-file", "", "FILE\tRequire this bearer token on /metrics (a file only its owner may read, as Prometheus's credentials_file)")
	return f
}

// Start serves the web front end as f says, if f.Addr or f.Inherited is
// set: it listens on f.Addr (or takes f.Inherited), serves the page over
// HTTP (HTTPS and WSS with tlsCfg), and hands the WebSocket connections to
// serve (the chat server's Serve) in a goroutine of its own, which ends
// when the chat server shuts down. With neither it does nothing and
// returns nil, whose Stop does nothing.
func (f *Flags) Start(serve func(net.Listener) error, tlsCfg *tls.Config, maxFileSize int64, logger *slog.Logger) (*Front, error) {
	var ln net.Listener
	switch {
	case f.Inherited != nil:
		ln = server.Inherited(f.Inherited, nil)
	case f.Addr != "":
		var err error
		if ln, err = server.Listen(context.Background(), f.Addr, nil); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	// The limit counts TCP connections, before any TLS handshake.
	lim := f.Limits
	lim.Exempt = append(append([]netip.Prefix(nil), lim.Exempt...), f.TrustedProxies...)
	ln = withTLS(LimitListener(ln, lim, logger), tlsCfg)
	hosts := f.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts(f.Addr, ln.Addr())
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	g, err := New(Config{AllowOrigins: f.AllowOrigins, TrustedProxies: f.TrustedProxies, Hosts: hosts, MaxFileSize: maxFileSize, Logger: logger}, ln.Addr())
	if err != nil {
		ln.Close()
		return nil, err
	}
	hs := NewHTTPServer(g, logger)
	logger.Info("serving the web client", "addr", scheme+"://"+ln.Addr().String()+"/")
	go hs.Serve(ln)
	go serve(g)
	return &Front{addr: ln.Addr(), hs: hs}, nil
}

// Front is a web front end started by Flags.Start.
type Front struct {
	addr net.Addr
	hs   *http.Server
}

// Addr returns the address the page is served at.
func (f *Front) Addr() net.Addr { return f.addr }

// Stop closes the HTTP server (the WebSocket sessions are the chat
// server's to end). It does nothing on a nil Front.
func (f *Front) Stop() {
	if f != nil {
		f.hs.Close()
	}
}

// Listen opens the HTTP listener, with the chat server's TCP keepalive.
// With tlsCfg it speaks TLS, offering HTTP/1.1 only (WebSocket upgrades
// need it).
func Listen(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Listener, error) {
	ln, err := server.Listen(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	return withTLS(ln, tlsCfg), nil
}

// withTLS returns ln speaking TLS with tlsCfg, HTTP/1.1 only, or ln itself
// when tlsCfg is nil.
func withTLS(ln net.Listener, tlsCfg *tls.Config) net.Listener {
	if tlsCfg == nil {
		return ln
	}
	cfg := tlsCfg.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	return tls.NewListener(ln, cfg)
}

// NewHTTPServer returns the HTTP server for h, with timeouts that keep
// idle or slow HTTP connections (not yet WebSockets) from piling up, and
// requests with a body refused (refuseBodies). Its own error log goes to
// logger at debug level.
func NewHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           refuseBodies(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       bodyTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}

// originsValue is the --http-allow-origin flag.
type originsValue struct{ list *[]string }

func (v *originsValue) String() string { return strings.Join(*v.list, ",") }
func (v *originsValue) Type() string   { return "patterns" }
func (v *originsValue) Set(s string) error {
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if err := checkOriginPattern(p); err != nil {
			return err
		}
		*v.list = append(*v.list, p)
	}
	return nil
}

// proxiesValue is the --http-trusted-proxy flag.
type proxiesValue struct{ list *[]netip.Prefix }

func (v *proxiesValue) String() string {
	s := make([]string, len(*v.list))
	for i, p := range *v.list {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
func (v *proxiesValue) Type() string { return "cidrs" }
func (v *proxiesValue) Set(s string) error {
	for f := range strings.SplitSeq(s, ",") {
		p, err := ParseProxy(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*v.list = append(*v.list, p)
	}
	return nil
}

// ParseProxy parses a trusted proxy: an IP address or a CIDR prefix.
func ParseProxy(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty proxy address")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad proxy prefix %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad proxy address %q: %w", s, err)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// hostsValue is the --http-hosts flag.
type hostsValue struct{ list *[]string }

func (v *hostsValue) String() string { return strings.Join(*v.list, ",") }
func (v *hostsValue) Type() string   { return "patterns" }
func (v *hostsValue) Set(s string) error {
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if err := checkHostPattern(p); err != nil {
			return err
		}
		*v.list = append(*v.list, p)
	}
	return nil
}
