package web

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"
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
	// HeartbeatTimeout, if set, is the chat server's heartbeat timeout
	// (server.Config.HeartbeatTimeout): the page pings after a third of
	// it without a frame, and takes its connection as lost after all of
	// it. Not a flag: the server's own --heartbeat-timeout sets it.
	HeartbeatTimeout time.Duration
	// Peers is --http-peers: the page URLs of the cluster's other nodes.
	Peers []string
}

// AddFlags registers the web front end's flags on fs and returns where
// their values go. Bad origin patterns and proxy addresses fail the parse.
func AddFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{}
	// The usage strings are the server's help (cli.Help): "METAVAR\ttext".
	fs.StringVar(&f.Addr, "http-addr", "", "HOST:PORT\tServe the web client and its WebSocket endpoint here (HTTPS and WSS with --tls-cert/--tls-key); off unless given")
	fs.Var(&patternsValue{&f.AllowOrigins, checkOriginPattern}, "http-allow-origin", "PATTERN\tAlso accept WebSocket connections from pages of these origins (host or scheme://host patterns, * wildcards; repeatable or comma-separated), defaults to the page's own only")
	fs.Var(&proxiesValue{&f.TrustedProxies}, "http-trusted-proxy", "CIDR\tBelieve X-Forwarded-For from these proxy addresses (IP or CIDR; repeatable or comma-separated), defaults to none")
	fs.Var(&patternsValue{&f.Hosts, checkHostPattern}, "http-hosts", "PATTERN\tHost names or addresses a WebSocket upgrade's Host header may name (* wildcards; repeatable or comma-separated), defaults to the names and addresses the server listens as")
	fs.Var(&peersValue{&f.Peers}, "http-peers", "URL\tIn a cluster, the page URLs of the other nodes (http[s]://HOST[:PORT]/; repeatable or comma-separated): a page resumes its session on one of them when this node dies, and their pages may connect here")
	fs.StringVar(&f.MetricsTokenFile, "metrics-token-file", "", "FILE\tRequire this bearer token on /metrics (a file only its owner may read, as Prometheus's credentials_file)")
	return f
}

// patternsValue is a flag of comma-separated patterns (--http-allow-origin,
// --http-hosts), each accepted by check before it is added to list.
type patternsValue struct {
	list  *[]string
	check func(string) error
}

func (v *patternsValue) String() string { return strings.Join(*v.list, ",") }
func (v *patternsValue) Type() string   { return "patterns" }
func (v *patternsValue) Set(s string) error {
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if err := v.check(p); err != nil {
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
