package web

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The page's other nodes (issue 22, second part; docs/WEB.md, "Another
// node"): a cluster's page may resume its session on another node when
// its own dies, as the terminal client does with several -a addresses.
// The operator names the other nodes' page URLs (--http-peers): a node
// knows the address it listens on, not the one browsers reach (a reverse
// proxy, TLS ended elsewhere, a public name). The page learns them from
// config.json; the page's Content-Security-Policy lets it open WebSockets
// to them; and each node accepts WebSocket connections from the pages of
// its peers (their origins join --http-allow-origin), so that a page
// served by one node may resume on another.

// pagePeer is another node's page, parsed from --http-peers.
type pagePeer struct {
	url    string // as the page gets it: scheme://host[:port]/
	origin string // scheme://host[:port], for the allowed origins
	ws     string // its WebSocket origin, ws:// or wss://, for the CSP
}

// parsePeer checks a --http-peers URL: http or https, a host, no user,
// query or fragment, no path but "/".
func parsePeer(s string) (pagePeer, error) {
	u, err := url.Parse(s)
	if err != nil {
		return pagePeer{}, fmt.Errorf("bad peer URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Path != "" && u.Path != "/" {
		return pagePeer{}, fmt.Errorf("bad peer URL %q: want http://HOST[:PORT]/ or https://HOST[:PORT]/", s)
	}
	origin := u.Scheme + "://" + u.Host
	ws := "ws://" + u.Host
	if u.Scheme == "https" {
		ws = "wss://" + u.Host
	}
	return pagePeer{url: origin + "/", origin: origin, ws: ws}, nil
}

// parsePeers parses the --http-peers URLs. A page served over https may
// only be sent to https peers (the session's token would otherwise cross
// the network in clear, and browsers refuse such mixed content): that is
// checked where the page's scheme is known, by the page itself.
func parsePeers(list []string) ([]pagePeer, error) {
	var out []pagePeer
	for _, s := range list {
		p, err := parsePeer(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// contentSecurityPolicy returns the policy the page is served with:
// ContentSecurityPolicy, with the peers' WebSocket origins added to
// connect-src.
func contentSecurityPolicy(peers []pagePeer) string {
	if len(peers) == 0 {
		return ContentSecurityPolicy
	}
	var ws []string
	for _, p := range peers {
		ws = append(ws, p.ws)
	}
	return strings.Replace(ContentSecurityPolicy, "connect-src 'self'", "connect-src 'self' "+strings.Join(ws, " "), 1)
}

// peerURLs returns the peers' page URLs, for config.json.
func peerURLs(peers []pagePeer) []string {
	var out []string
	for _, p := range peers {
		out = append(out, p.url)
	}
	return out
}

// peersValue is the --http-peers flag.
type peersValue struct{ list *[]string }

func (v *peersValue) String() string { return strings.Join(*v.list, ",") }
func (v *peersValue) Type() string   { return "urls" }
func (v *peersValue) Set(s string) error {
	for f := range strings.SplitSeq(s, ",") {
		if _, err := parsePeer(strings.TrimSpace(f)); err != nil {
			return err
		}
		*v.list = append(*v.list, strings.TrimSpace(f))
	}
	if len(*v.list) == 0 {
		return errors.New("empty --http-peers")
	}
	return nil
}
