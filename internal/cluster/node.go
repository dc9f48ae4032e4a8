// Package cluster runs the chat server as one node of a cluster: several
// server processes that behave, to every client, exactly like one server
// of PROTOCOL.md. NATS is the distributed engine: JetStream key-value
// buckets hold the cluster-wide registry (names, the client cap, node
// leases), and core NATS subjects carry frames, files and heartbeats
// between nodes. A node either embeds a nats-server that routes to the
// other nodes' embedded servers, or joins an existing NATS deployment.
//
// The package's Hub implements server.Hub: local users are served by a
// server.LocalHub without touching NATS; remote users stand behind
// server.Peer values that relay to their node. docs/CLUSTER.md explains
// the design, the faults and their timings.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config holds a node's settings.
type Config struct {
	// Name is the cluster's name: its buckets, subjects and embedded NATS
	// cluster are named after it (1 to 32 letters, digits, - and _;
	// default "gochat"). Several clusters can share one NATS deployment.
	Name string
	// Node is this node's name, unique in the cluster: 1 to 64 bytes of
	// letters, digits and "-_.:" (default: host name and chat port).
	Node string
	// ChatAddr is the address the node serves chat on, for the record.
	ChatAddr string
	// MaxClients is the cluster-wide cap; every node must agree on it.
	MaxClients int

	// Embedded engine: Listen is this node's route address (host:port);
	// Peers the other nodes' route addresses; Dir holds the engine's
	// state (default: $XDG_STATE_HOME/gochatd/<node>, else
	// ~/.local/state/gochatd/<node>; see stateDir).
	Listen string
	Peers  []string
	Dir    string
	// SecretFile holds the cluster's secret, the same on every node:
	// routes that do not prove it are refused (route authorization with a
	// user and password derived from it). An embedded engine needs it
	// unless Insecure is set.
	SecretFile string
	Insecure   bool
	// TLSCert and TLSKey are this node's certificate and key for mutual
	// TLS on routes; TLSCA the authority every node's certificate must be
	// signed by (each side of a route verifies the other's).
	TLSCert, TLSKey, TLSCA string

	// External engine: NATS URLs, and optionally credentials and a CA to
	// trust for TLS to NATS.
	NATS      []string
	NATSCreds string
	NATSCA    string
	// NATSCert and NATSKey are a client certificate and its key for TLS
	// to NATS (servers that verify their clients).
	NATSCert, NATSKey string

	// Replicas of the registry's buckets (default: 3 when the engine has
	// three servers or more, as far as the node can tell: the embedded
	// engines it routes to, or the NATS servers it was given and those
	// the first one told it of; otherwise 1).
	Replicas int
	// Wait bounds the wait to become part of the cluster (default 60 s).
	Wait time.Duration
	// StallTimeout cuts off a file transfer between nodes that makes no
	// progress for this long (default 30 s).
	StallTimeout time.Duration
	// PaceBacklog is the most bytes of frames from this node that may wait
	// at another node for one of its users before a sender is paced (the
	// server's --pace-backlog; 0: no pacing).
	PaceBacklog int

	Logger *slog.Logger

	// repeatEvery is the period of the repeated records (0: repeatEvery);
	// tests shorten it.
	repeatEvery time.Duration
}

// Timings of the cluster's failure detection and fencing; docs/CLUSTER.md
// explains how they relate.
const (
	// heartbeatEvery is how often a node announces itself on core NATS.
	heartbeatEvery = 500 * time.Millisecond
	// heartbeatTimeout hides a node's users once nothing was heard from
	// it for this long.
	heartbeatTimeout = 3500 * time.Millisecond
	// rejoinWait bounds the wait of a node whose lease is renewed again
	// (back from a partition) to hear the nodes that fell silent before it
	// admits again.
	rejoinWait = 2 * time.Second
	// renewEvery is how often a node renews its lease.
	renewEvery = time.Second
	// leaseTTL is how long a lease lives unrenewed; then the other nodes
	// give the node's names and places away.
	leaseTTL = 20 * time.Second
	// fenceAfter is how long a node goes on without a renewed lease
	// before it stops admitting and cuts its users off. It is shorter
	// than leaseTTL, so a node cut off from the cluster has let go of its
	// users before the cluster gives their names away, and longer than a
	// JetStream leader election (4-9 s), so losing one NATS server does
	// not cut anybody off.
	fenceAfter = 12 * time.Second
	// recordsWait and leaseWait bound the removal of a leaving node's
	// records and then of its lease.
	recordsWait = 2 * time.Second
	leaseWait   = time.Second
)

// kvTimeout bounds one registry operation. (A variable: a test makes
// it short to find out whether joins wait in the engine.)
var kvTimeout = 3 * time.Second

// DefaultWait is the default bound on the wait to join the cluster.
const DefaultWait = 60 * time.Second

// validName reports whether s is 1 to max bytes of ASCII letters, digits
// and the bytes of extra. (These were regexps like ^[A-Za-z0-9_-]{1,32}$,
// compiled at package initialisation: 1,303 allocations and 0.18 ms of
// every server's start, cluster or not; issue 19.)
func validName(s string, max int, extra string) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// validNodeName reports whether s may name a node: 1 to 64 letters,
// digits and the characters - _ . :
func validNodeName(s string) bool { return validName(s, 64, "_.:-") }

// DefaultName is the default cluster name.
const DefaultName = "gochat"

// Check reports what is wrong with the settings, if anything, without
// starting or contacting anything.
func (c *Config) Check() error {
	embedded := c.Listen != "" || len(c.Peers) > 0
	switch {
	case embedded && len(c.NATS) > 0:
		return errors.New("--nats (an external engine) and --cluster-listen/--cluster-peers (an embedded one) exclude each other")
	case !embedded && len(c.NATS) == 0:
		return errors.New("cluster mode needs --cluster-listen (and --cluster-peers) or --nats")
	case embedded && c.Listen == "":
		return errors.New("--cluster-peers needs --cluster-listen")
	case !embedded && (c.Dir != ""):
		return errors.New("--cluster-dir belongs to the embedded engine (--cluster-listen)")
	case embedded && (c.NATSCreds != "" || c.NATSCA != "" || c.NATSCert != "" || c.NATSKey != ""):
		return errors.New("--nats-creds and --nats-tls-* belong to --nats")
	case (c.NATSCert != "") != (c.NATSKey != ""):
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	case !embedded && (c.SecretFile != "" || c.Insecure || c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != ""):
		return errors.New("--cluster-secret-file, --cluster-insecure and --cluster-tls-* belong to the embedded engine (--cluster-listen)")
	case (c.TLSCert != "") != (c.TLSKey != "") || (c.TLSCert != "") != (c.TLSCA != ""):
		return errors.New("--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together")
	case embedded && c.SecretFile != "" && c.Insecure:
		return errors.New("--cluster-secret-file and --cluster-insecure exclude each other")
	case embedded && c.SecretFile == "" && !c.Insecure:
		return errNoSecret
	case c.Node != "" && !validNodeName(c.Node):
		return fmt.Errorf("--node %q: use 1 to 64 letters, digits and the characters - _ . : only", c.Node)
	case c.Name != "" && !validName(c.Name, 32, "_-"):
		return fmt.Errorf("--cluster-name %q: use 1 to 32 letters, digits, - and _", c.Name)
	case c.MaxClients < 1:
		return errors.New("the client cap must be at least 1")
	case c.Replicas < 0 || c.Replicas > 5:
		return errors.New("--cluster-replicas takes 1 to 5")
	}
	if embedded {
		for _, a := range append([]string{c.Listen}, c.Peers...) {
			if _, _, err := splitHostPort(a); err != nil {
				return fmt.Errorf("cluster address %q: %v", a, err)
			}
		}
	}
	for _, u := range c.NATS {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls") {
			return fmt.Errorf("--nats: %q is not a nats:// or tls:// URL", redactURL(u))
		}
	}
	return nil
}

func splitHostPort(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Node == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "node"
		}
		_, port, _ := net.SplitHostPort(c.ChatAddr)
		c.Node = sanitizeNode(host) + ":" + port
	}
	if c.Wait <= 0 {
		c.Wait = DefaultWait
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Replicas <= 0 && c.Listen != "" {
		c.Replicas = 1
		if len(c.Peers)+1 >= 3 {
			c.Replicas = 3
		}
	}
}

// sanitizeNode keeps the characters a node name may have.
func sanitizeNode(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:-", r)) {
			return r
		}
		return '-'
	}, s)
}

// Node is this process's membership of the cluster.
type Node struct {
	cfg Config
	log *slog.Logger
	// quiet is log through a repeatHandler, for the records that come in
	// numbers in a fault (the engine's, a peer's errors): each kind at
	// most once every 10 s, with a count (issue 23 item 17). repeats is
	// its state, closed as the node ends.
	quiet   *slog.Logger
	repeats *repeatState
	inc     uint64 // this incarnation: random, new at every start
	ns      *natsserver.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	hub     *Hub
	m       *metrics
	stop    chan struct{} // closed by Close

	ignored ignoredLog // messages from nodes that hold no lease

	// ctx bounds every engine operation; cancelled by Close, after the
	// node has said goodbye.
	ctx    context.Context
	cancel context.CancelFunc

	wg        sync.WaitGroup // the node's goroutines, started by spawn
	spawnMu   sync.Mutex     // orders spawn's Add before halt's closing of stop
	closeOnce sync.Once
}

// spawn starts f in a goroutine owned by the node, which Close waits for,
// and reports true; once Close has stopped the node it starts nothing and
// reports false. Goroutines are also started from the engine's callbacks, which
// may still run while the node closes.
func (n *Node) spawn(f func()) bool {
	n.spawnMu.Lock()
	defer n.spawnMu.Unlock()
	select {
	case <-n.stop:
		return false // it would end at once anyway
	default:
	}
	n.wg.Go(f)
	return true
}

// halt closes stop: the node's goroutines end, and spawn starts no more.
func (n *Node) halt() {
	n.spawnMu.Lock()
	defer n.spawnMu.Unlock()
	close(n.stop)
}

// Start joins the cluster: it starts the embedded engine or connects to
// the external one, waits (at most cfg.Wait, saying what for) until the
// registry is usable, checks the cluster's client cap, and takes the
// node's lease. Only then should the chat port open.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Node), inc: randomUint64(), stop: make(chan struct{})}
	every := cfg.repeatEvery
	if every <= 0 {
		every = repeatEvery
	}
	rh := newRepeatHandler(cfg.Logger.Handler(), realClock{}, every)
	n.quiet, n.repeats = slog.New(rh).With("node", cfg.Node), rh.s
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.m = newMetrics()
	ctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()
	if err := n.start(ctx); err != nil {
		n.halt()
		n.cancel()
		if n.hub != nil {
			n.hub.stopAll(ctx.Err() == nil)
		}
		n.wg.Wait()
		n.shutdownEngine()
		if ctx.Err() != nil && !errors.Is(err, errNodeTaken) && !errors.Is(err, errCapMismatch) {
			return nil, fmt.Errorf("not part of the cluster after %v: %w", cfg.Wait, err)
		}
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	var err error
	if n.cfg.Listen != "" {
		if n.ns, err = startEngine(n.cfg, n.quiet); err != nil {
			return err
		}
	}
	if n.nc, err = n.connect(ctx); err != nil {
		return err
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return err
	}
	if n.cfg.Replicas <= 0 {
		servers := map[string]bool{}
		for _, u := range append(append([]string{}, n.cfg.NATS...), n.nc.DiscoveredServers()...) {
			servers[u] = true
		}
		n.cfg.Replicas = 1
		if len(servers) >= 3 {
			n.cfg.Replicas = 3
		}
	}
	info := n.info()
	reg, err := openRegistry(ctx, info, n.js, n.cfg)
	if err != nil {
		return err
	}
	if n.hub, err = newHub(info, n.cfg, n.js, reg); err != nil {
		return err
	}
	if err := n.hub.start(ctx); err != nil {
		return err // Start stops what was started
	}
	n.log.Info("part of the cluster", "incarnation", fmt.Sprintf("%016x", n.inc), "replicas", n.cfg.Replicas)
	return nil
}

// connect connects to the engine, retrying until ctx ends.
func (n *Node) connect(ctx context.Context) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("gochatd " + n.cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
		nats.Timeout(2 * time.Second),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			select {
			case <-n.stop:
			default:
				n.log.Warn("lost the engine connection", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.m.reconnects.Inc()
			n.log.Warn("engine connection back", "server", n.engineServer(c))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			n.quiet.Warn("engine error", "subject", subj, "err", err)
		}),
	}
	url := strings.Join(n.cfg.NATS, ",")
	if n.ns != nil {
		opts = append(opts, nats.InProcessServer(n.ns))
		url = ""
	}
	if n.cfg.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(n.cfg.NATSCreds))
	}
	if n.cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(n.cfg.NATSCA))
	}
	if n.cfg.NATSCert != "" {
		opts = append(opts, nats.ClientCert(n.cfg.NATSCert, n.cfg.NATSKey))
	}
	for attempt := 0; ; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			n.log.Info("connected to the engine", "server", n.engineServer(nc))
			return nc, nil
		}
		if attempt%10 == 0 {
			n.log.Info("waiting for the engine", "nats", redactURLs(n.cfg.NATS), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot reach NATS at %s: %w", redactURLs(n.cfg.NATS), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// engineServer names, for the logs, the engine server nc is connected
// to. The embedded engine is reached in process: nc's URL is then the
// NATS default, nats://127.0.0.1:4222, where nothing listens (issue 23
// item 16), so it is named for what it is. An external server's URL is
// redacted by redactURL, not nc.ConnectedUrlRedacted, which shows a
// token given as a lone user (nats://TOKEN@host) in clear.
func (n *Node) engineServer(nc *nats.Conn) string {
	if n.ns != nil {
		return "embedded, in process"
	}
	return redactURL(nc.ConnectedUrl())
}

// nodeInfo is what the parts of a node (hub, registry, writer, relay,
// liveness, deleter) are given of it at construction, each its own copy,
// so that none reaches back through another part to the Node (they did
// so through the hub's back-pointer in 53 places, liveness to read the
// node's settings in eight; issue 24 item 5). It is made once the engine
// connection is up, before the first part, and is read-only after.
type nodeInfo struct {
	self    string // this node's name (Config.Node)
	cluster string // the cluster's name (Config.Name): subjects and buckets begin with it
	inc     uint64 // this incarnation: random, new at every start

	log     *slog.Logger
	quiet   *slog.Logger // log for what comes in numbers in a fault (Node.quiet)
	m       *metrics
	ignored *ignoredLog // messages from nodes that hold no lease

	nc    *nats.Conn
	ctx   context.Context   // bounds every engine operation; cancelled by Close
	stop  <-chan struct{}   // closed by Close: the node's goroutines end
	spawn func(func()) bool // Node.spawn: starts a goroutine that Close waits for
}

// info returns what the node's parts are given of it.
func (n *Node) info() nodeInfo {
	return nodeInfo{
		self: n.cfg.Node, cluster: n.cfg.Name, inc: n.inc,
		log: n.log, quiet: n.quiet, m: n.m, ignored: &n.ignored,
		nc: n.nc, ctx: n.ctx, stop: n.stop, spawn: n.spawn,
	}
}

// subject returns the subject of kind for node: the cluster's name, kind,
// and the node's name in base64.
func (i *nodeInfo) subject(kind, node string) string {
	return i.cluster + kind + b64.EncodeToString([]byte(node))
}

// Hub returns the cluster's user registry for the chat server.
func (n *Node) Hub() *Hub { return n.hub }

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Node }

// Close leaves the cluster cleanly: the other nodes are told at once, so
// this node's users vanish from their lists, then its registry entries
// and lease are removed (within a few seconds at most) and the engine
// stops. The chat server should be shut down first.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		answered := n.hub.leave()
		n.halt()
		n.cancel()
		n.hub.stopAll(answered)
		n.wg.Wait()
		if n.nc != nil {
			// Let what was published go out, for a moment at most.
			n.nc.FlushTimeout(2 * time.Second)
		}
		n.shutdownEngine()
		n.log.Info("left the cluster")
	})
}

func (n *Node) shutdownEngine() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.ns != nil {
		n.ns.Shutdown()
		n.ns.WaitForShutdown()
	}
	n.repeats.close() // what the engine repeated last is logged now
}

func randomUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0
}
