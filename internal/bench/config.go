package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/cli"
	"github.com/gochat/chat/internal/protocol"
)

// The workloads, in the order "all" runs them.
const (
	Throughput = "throughput"
	Latency    = "latency"
	Scale      = "scale"
	Files      = "files"
)

// AllWorkloads lists every workload in the order "all" runs them.
var AllWorkloads = []string{Throughput, Latency, Scale, Files, Web}

// Workloads lists every workload: those of "all", startup, which needs a
// server binary to start (--server-bin), and storm, which takes a minute
// or more and more processes than the others.
var Workloads = append(slices.Clone(AllWorkloads), Startup, Storm, Failover)

// Config is one invocation of the tool. Lists run every combination.
type Config struct {
	Workloads []string

	Duration time.Duration // measured time of a throughput or latency run
	Warmup   time.Duration // unmeasured time before it
	Timeout  time.Duration // bound on any one phase (connecting, a file transfer, ...)

	// throughput
	Clients    []int
	Sizes      []int
	Recipients []int
	// latency
	LatClients    int
	Rates         []int
	LatSize       int
	LatRecipients int
	// scale
	ScaleClients     []int
	ClientsPerWorker int
	SrcAddrs         int
	JoinRate         float64 // joins per second, all workers together; 0: as fast as they go
	// ScaleHeartbeat makes the scale clients ask for the heartbeat
	// extension and answer the server's pings; ScaleIdle holds them idle
	// that long once weighed, the server's CPU time measured meanwhile
	// (scaleidle.go).
	ScaleHeartbeat bool
	ScaleIdle      time.Duration
	// storm
	StormJoins      []int // joins fired at once at each node loaded
	StormOn         int   // nodes loaded; 0: all
	StormMaxClients int   // the servers' cap; 0: the joins and a margin
	StormDials      int   // connections being dialed at once per node
	// failover (failover.go)
	Failover FailoverConfig
	// files
	FileSizes      []int64
	FileRecipients int
	FileModes      []string // ModePlain, ModeChunked, ModeClients
	// ClientBins are the client binaries of ModeClients, each run in
	// turn; "" re-executes this tool as the client.
	ClientBins   []string
	ChatRate     int
	FileSlowRate int // bytes per second an extra, slow recipient reads the file at; 0: none
	// startup
	Starts      int    // starts of each binary
	BaselineBin string // server binary to start beside ServerBin; "" for none

	// the server under test
	ServerAddr string // external server; "" starts one
	ServerBin  string // server binary spawned for scale and files; "" re-executes this tool
	ServerPID  int    // pid of the external server, for its RSS

	// Limits runs the in-process server with the real server's default
	// limits (flood control, bytes budget, pacing) instead of with flood
	// control off.
	Limits bool

	// Cluster, when 2 or more, runs every workload against a cluster of
	// that many nodes (spawned processes), beside the same workload
	// against one node spawned from the same binary (the baseline).
	Cluster int
	// RoundSample is how many users send one message each to a user on
	// another node in the cluster's sampled scale round.
	RoundSample int

	NoBaseline bool
	CSV        bool
	CPUProfile string
	MemProfile string
}

// DefaultConfig returns the targets as defaults.
func DefaultConfig() Config {
	return Config{
		Workloads:        slices.Clone(AllWorkloads),
		Duration:         3 * time.Second,
		Warmup:           time.Second,
		Timeout:          2 * time.Minute,
		Clients:          []int{100},
		Sizes:            []int{32},
		Recipients:       []int{1},
		LatClients:       1000,
		Rates:            []int{20000},
		LatSize:          32,
		LatRecipients:    1,
		ScaleClients:     []int{10000},
		ClientsPerWorker: 10000,
		SrcAddrs:         8,
		FileSizes:        []int64{1 << 30},
		FileRecipients:   1,
		FileModes:        []string{ModePlain, ModeChunked, ModeClients},
		ClientBins:       []string{""},
		ChatRate:         100,
		Starts:           15,
		RoundSample:      1000,
		StormJoins:       []int{19000},
		StormDials:       256,
		Failover:         defaultFailover(),
	}
}

// Limits of the flag values.
const (
	// MinTextSize is the smallest message text: the stamp (sender index
	// and send time) must fit.
	MinTextSize = stampLen
	maxDuration = 10 * time.Minute
	maxClients  = 1 << 20
	maxRate     = 10_000_000
	// maxNodes bounds --cluster: every node is a process with its own
	// engine on this machine.
	maxNodes = 9
)

// Validate checks the configuration and returns the first problem found.
func (c *Config) Validate() error {
	if len(c.Workloads) == 0 {
		return errors.New("no workload given")
	}
	for _, w := range c.Workloads {
		if !slices.Contains(Workloads, w) {
			return fmt.Errorf("unknown workload %q (want %s or all)", w, strings.Join(Workloads, ", "))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool
	}{{"--duration", c.Duration, false}, {"--warmup", c.Warmup, true}, {"--timeout", c.Timeout, false}} {
		if d.v < 0 || d.v == 0 && !d.zero || d.v > maxDuration {
			return fmt.Errorf("%s %v out of range (0, %v]", d.name, d.v, maxDuration)
		}
	}
	inRange := func(name string, vals []int, lo, hi int) error {
		if len(vals) == 0 {
			return fmt.Errorf("%s: no value", name)
		}
		for _, v := range vals {
			if v < lo || v > hi {
				return fmt.Errorf("%s %d out of range [%d, %d]", name, v, lo, hi)
			}
		}
		return nil
	}
	checks := []error{
		inRange("--clients", c.Clients, 1, maxClients),
		inRange("--size", c.Sizes, MinTextSize, protocol.MaxTextBytes),
		inRange("--recipients", c.Recipients, 1, protocol.MaxRecipients),
		inRange("--latency-clients", []int{c.LatClients}, 1, maxClients),
		inRange("--rate", c.Rates, 1, maxRate),
		inRange("--latency-size", []int{c.LatSize}, MinTextSize, protocol.MaxTextBytes),
		inRange("--latency-recipients", []int{c.LatRecipients}, 1, min(protocol.MaxRecipients, c.LatClients)),
		inRange("--scale-clients", c.ScaleClients, 2, maxClients),
		inRange("--clients-per-worker", []int{c.ClientsPerWorker}, 1, maxClients),
		inRange("--src-addrs", []int{c.SrcAddrs}, 1, 250),
		inRange("--file-recipients", []int{c.FileRecipients}, 1, protocol.MaxRecipients),
		inRange("--chat-rate", []int{c.ChatRate}, 1, 100_000),
		inRange("--file-slow-rate", []int{c.FileSlowRate}, 0, 1<<30),
		inRange("--server-pid", []int{c.ServerPID}, 0, 1<<22),
		inRange("--round-sample", []int{c.RoundSample}, 1, maxStampIdx),
		inRange("--storm-joins", c.StormJoins, 1, maxClients),
		inRange("--storm-on", []int{c.StormOn}, 0, max(c.Cluster, 1)),
		inRange("--storm-max-clients", []int{c.StormMaxClients}, 0, maxClients),
		inRange("--storm-dials", []int{c.StormDials}, 1, 4096),
	}
	if c.StormMaxClients > 0 {
		on := c.StormOn
		if on == 0 {
			on = max(c.Cluster, 1)
		}
		for _, j := range c.StormJoins {
			if j*on+max(c.Cluster, 1) > c.StormMaxClients {
				checks = append(checks, fmt.Errorf("--storm-max-clients %d: below the %d joins of a storm and the probes", c.StormMaxClients, j*on))
			}
		}
	}
	if slices.Contains(c.Workloads, Storm) && c.ServerAddr != "" {
		checks = append(checks, errors.New("storm spawns its servers: it excludes --server-addr"))
	}
	if c.JoinRate < 0 || c.JoinRate > maxRate || math.IsNaN(c.JoinRate) {
		checks = append(checks, fmt.Errorf("--join-rate %v out of range [0, %d]", c.JoinRate, maxRate))
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	for _, n := range c.Clients {
		for _, r := range c.Recipients {
			if r > n {
				return fmt.Errorf("--recipients %d exceeds --clients %d", r, n)
			}
		}
	}
	if len(c.FileSizes) == 0 {
		return errors.New("--file-size: no value")
	}
	for _, s := range c.FileSizes {
		if s < 1 || s > protocol.DefaultMaxFileSize {
			return fmt.Errorf("--file-size %d out of range [1, %d]", s, protocol.DefaultMaxFileSize)
		}
	}
	if len(c.FileModes) == 0 {
		return errors.New("--file-mode: no value")
	}
	for _, m := range c.FileModes {
		if m != ModePlain && m != ModeChunked && m != ModeClients {
			return fmt.Errorf("--file-mode %q (want %s, %s or %s)", m, ModePlain, ModeChunked, ModeClients)
		}
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.checkStartup(); err != nil {
		return err
	}
	if c.ServerAddr != "" {
		if err := CheckLoopback(c.ServerAddr); err != nil {
			return fmt.Errorf("--server-addr: %w", err)
		}
		if c.ServerBin != "" {
			return errors.New("--server-addr and --server-bin exclude each other")
		}
	}
	return nil
}

// validateCluster checks what --cluster needs: servers the tool spawns,
// and enough clients to put senders and recipients on different nodes.
func (c *Config) validateCluster() error {
	if c.Cluster == 0 {
		return nil
	}
	switch {
	case c.Cluster < 2 || c.Cluster > maxNodes:
		return fmt.Errorf("--cluster %d out of range [2, %d] (0: no cluster)", c.Cluster, maxNodes)
	case c.ServerAddr != "":
		return errors.New("--cluster spawns its nodes: it excludes --server-addr")
	case c.Limits:
		return errors.New("--limits is about the in-process server; with --cluster every server is spawned")
	}
	for _, n := range c.Clients {
		for _, r := range c.Recipients {
			if _, err := halves(n, r); err != nil {
				return fmt.Errorf("--clients %d --recipients %d: %w", n, r, err)
			}
		}
	}
	if _, err := halves(c.LatClients, c.LatRecipients); err != nil {
		return fmt.Errorf("--latency-clients %d --latency-recipients %d: %w", c.LatClients, c.LatRecipients, err)
	}
	for _, n := range c.ScaleClients {
		if n < c.Cluster {
			return fmt.Errorf("--scale-clients %d: fewer than the %d nodes", n, c.Cluster)
		}
		if c.RoundSample > n {
			return fmt.Errorf("--round-sample %d exceeds --scale-clients %d", c.RoundSample, n)
		}
	}
	return nil
}

// CheckLoopback returns an error unless addr is host:port with host an IP
// address in 127.0.0.0/8 or ::1, or "localhost": the tool sends traffic
// only to this machine.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (127.0.0.0/8, ::1 or localhost)", host)
	}
	return nil
}

// intList is a flag holding a comma-separated list of counts; with sizes
// true, each may carry a K/M/G suffix.
type intList struct {
	vals  *[]int
	sizes bool
}

func (l intList) String() string { return joinInts(*l.vals) }
func (l intList) Type() string   { return "list" }
func (l intList) Set(s string) error {
	v, err := ParseList(s, l.sizes)
	if err != nil {
		return err
	}
	*l.vals = make([]int, len(v))
	for i, x := range v {
		if x > 1<<40 {
			return fmt.Errorf("%d too large", x)
		}
		(*l.vals)[i] = int(x)
	}
	return nil
}

type int64List struct{ vals *[]int64 }

func (l int64List) String() string {
	s := make([]string, len(*l.vals))
	for i, v := range *l.vals {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ",")
}
func (l int64List) Type() string { return "list" }
func (l int64List) Set(s string) error {
	v, err := ParseList(s, true)
	if err != nil {
		return err
	}
	*l.vals = v
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// ParseList parses "1,10,100" (with sizes, also "32,1K,64KiB,1G") into
// non-negative numbers.
func ParseList(s string, sizes bool) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		var v int64
		var err error
		if sizes {
			v, err = cli.ParseSize(f)
		} else {
			v, err = strconv.ParseInt(f, 10, 64)
		}
		if err != nil || v < 0 {
			return nil, fmt.Errorf("bad list element %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// Usage is the tool's help text.
const Usage = `chatbench: benchmarks the chat server over loopback, each workload beside a baseline.

Usage: chatbench [flags] [workload ...]   (workloads: throughput latency scale files web startup
       storm, or all, which is all but startup and storm; default all)

  throughput  C clients each send S-byte texts to R recipients as fast as a window of
              unacknowledged messages allows; delivered msgs/s and MB/s (vs embedded nats-server)
  latency     a fixed offered rate spread over C clients; p50/p90/p99/max delivery latency
              (vs embedded nats-server)
  scale       N joined idle clients (server in its own process), then one message each;
              server RSS per idle client, round time
  files       one F-byte file to R recipients, server RSS growth, chat latency to a recipient
              during the transfer (vs a plain loopback TCP copy); mode clients: from a file on
              disk to files on disk between client processes, until each recipient has synced
              and printed it (vs a file-to-file loopback TCP copy that syncs), chat latency to
              the first recipient as it prints it
  web         the throughput workload with WebSocket clients (vs TCP clients, same server, same
              run); server RSS per idle WebSocket client (vs TCP; needs --server-bin, at most
              10000 clients of each kind)
  storm       --storm-joins N joins fired at once at each node (one server, or with --cluster
              at --storm-on of its nodes), each followed by a message to itself that comes back
              once it is admitted; then all leave at once, and the same names join at once again:
              time until all are admitted, refusals and drops, join latency p50/p90/p99, registry
              writes/s (2 per join) and the servers' CPU per join (no baseline)
  failover    --failover-users users asking for resume on n1 of a cluster (--cluster, at least 3),
              --failover-rate msgs/s to them from the other nodes; n1 is killed with SIGKILL and
              each resumes on the next node: resume time p50/p99, delivered, missed, sent, and
              users whose delivered + missed != sent (no baseline)
  startup     starts --server-bin (with -p only) --starts times and measures from exec to the
              first TCP connection that succeeds, and to the answer to a join and a user list
              request; median and p90 (vs --baseline-bin, started alternately, if given)

With --cluster N every workload runs against N nodes spawned as a cluster (--server-bin, or
this tool re-executed), beside the same workload against one node spawned from the same
binary; the ratio is cluster / single node. Senders join n1 and recipients n2 (throughput,
latency, files); scale spreads its clients over every node and adds a round of --round-sample
messages, each to a user on another node.

Lists (comma-separated) run every combination. Sizes take K/M/G suffixes (binary).
Flags:
`

// ParseArgs parses the command line into a validated Config.
func ParseArgs(args []string, stderr io.Writer) (Config, error) {
	c := DefaultConfig()
	fs := pflag.NewFlagSet("chatbench", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, Usage)
		fs.PrintDefaults()
	}
	fs.DurationVar(&c.Duration, "duration", c.Duration, "measured time of each throughput and latency run")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "unmeasured time before each throughput and latency run")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "bound on any one phase (connecting, joining, a file transfer)")
	for _, w := range workloads {
		if w.flags != nil {
			w.flags(fs, &c)
		}
	}
	fs.StringVar(&c.ServerAddr, "server-addr", "", "target this running server (loopback host:port) instead of starting one")
	fs.StringVar(&c.ServerBin, "server-bin", "", "server binary spawned for scale and files, and for every workload with --cluster (default: this tool re-executed as the server); the binary startup starts")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "with --server-addr: the server's pid, to read its RSS")
	fs.IntVar(&c.Cluster, "cluster", 0, "run the workloads against a cluster of this many nodes (2 or more), beside one node")
	fs.BoolVar(&c.NoBaseline, "no-baseline", false, "skip the baselines (with --cluster: the single-node runs)")
	fs.BoolVar(&c.Limits, "limits", false, "throughput and latency: run the in-process server with the server's default limits (flood control, bytes budget, pacing) instead of with flood control off")
	fs.BoolVar(&c.CSV, "csv", false, "print CSV instead of tables")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (in-process server included) to this file")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write a heap profile of this process to this file at the end")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		c.Workloads = nil
		for _, a := range fs.Args() {
			if a == "all" {
				c.Workloads = append(c.Workloads, AllWorkloads...)
				continue
			}
			c.Workloads = append(c.Workloads, a)
		}
	}
	return c, c.Validate()
}
