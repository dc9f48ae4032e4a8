// Command gochatd is the chat server of PROTOCOL.md (the course's "server").
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/cli"
	"github.com/gochat/chat/internal/cluster"
	"github.com/gochat/chat/internal/daemon"
	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/web"
)

// serverHelp is the help of -h, its flags' defaults taken from their
// definitions (cli.Help).
var serverHelp = cli.Help{
	Purpose: "gochatd is a chat server: users join under unique names, from the terminal " +
		"client (gochat) or a browser (--http-addr), and send each other messages and files. " +
		"It speaks the protocol of docs/PROTOCOL.md, prints one line per event on stdout and " +
		"logs on stderr. Several servers can act as one (cluster mode, docs/CLUSTER.md).",
	Usage: "gochatd [-p PORT] [-a ADDRESS] [options]",
	Sections: []cli.HelpSection{
		{Title: "", Flags: []cli.HelpFlag{
			{Name: "port", Text: "PORT\tThe server port (0: any free port)"},
			{Name: "address", Text: "ADDRESS\tThe server's IP address or host name"},
			{Name: "help", Text: "Print this help"},
		}},
		{Title: "Users and limits (docs/OPERATIONS.md)", Flags: []cli.HelpFlag{
			{Name: "max-clients", Text: "N\tMost users joined at once (MAX_NUM_CLIENTS)"},
			{Name: "max-file-size", Text: "SIZE\tLargest file relayed (bytes, or with K/M/G)"},
			{Name: "join-timeout", Text: "DURATION\tClose connections that have not joined in time"},
			{Name: "send-queue", Text: "SIZE\tBytes that may wait for one slow client"},
			{Name: "stall-timeout", Text: "DURATION\tCut off a client whose socket takes nothing, or a file sender who sends nothing, for this long"},
			{Name: "flood-rate", Text: "N\tFrames per second one client may keep sending before its reading is paced (0: no limit)"},
			{Name: "flood-burst", Text: "N\tFrames one client may send at once"},
			{Name: "flood-bytes", Text: "SIZE\tBytes per second one client may have delivered (a frame's size times its recipients) before its reading is paced (0: no limit)"},
			{Name: "flood-bytes-burst", Text: "SIZE\tBytes one client may have delivered at once"},
			{Name: "pace-backlog", Text: "SIZE\tPause a client's reading while a recipient of its last frame has this much waiting, until it drops (0: never), defaults to 2M (or a quarter of --send-queue, if that is less)"},
			{Name: "min-upload-rate", Text: "SIZE\tCut off a file whose sender brings fewer bytes per second than this over a window of waiting for it (0: never)"},
			{Name: "min-upload-window", Text: "DURATION\tThat window"},
			{Name: "max-conns-per-ip", Text: "N\tOpen connections allowed from one IP address (0: no limit; loopback is exempt unless --limit-loopback)"},
			{Name: "limit-loopback", Text: "Apply --max-conns-per-ip to loopback addresses too"},
			{Name: "spool-dir", Text: "DIR\tWhere files for users who take whole frames are held until complete, defaults to the temporary folder"},
			{Name: "spool-max", Text: "SIZE\tMost bytes of such files held on disk at once; a file past it does not reach those users"},
			{Name: "spool-memory", Text: "SIZE\tMost bytes of such files held in memory instead (a file of up to an eighth of it)"},
			{Name: "resume-window", Text: "DURATION\tHow long a session whose connection was lost keeps its name and what is sent to it, for its client to resume (0: sessions end with their connection)"},
			{Name: "resume-buffer", Text: "SIZE\tMost bytes kept for one such session; past it the oldest are dropped and counted as missed"},
			{Name: "heartbeat-timeout", Text: "DURATION\tCut off a client that asked for heartbeat and sent nothing for this long, pinging it at half of it: a vanished network is seen in seconds (0: heartbeat not offered)"},
		}},
		{Title: "Logs, metrics and TLS", Flags: []cli.HelpFlag{
			{Name: "log-level", Text: "LEVEL\tdebug, info, warn or error (logs go to stderr)"},
			{Name: "log-format", Text: "FORMAT\ttext or json"},
			{Name: "metrics-addr", Text: "ADDR\tServe Prometheus metrics at http://ADDR/metrics"},
			{Name: "metrics-token-file"},
			{Name: "tls-cert", Text: "FILE\tSpeak TLS with this PEM certificate (needs --tls-key), on the chat port and the web client's"},
			{Name: "tls-key", Text: "FILE\tThe PEM private key of --tls-cert"},
		}},
		{Title: "Web client (docs/WEB.md)", Flags: []cli.HelpFlag{
			{Name: "http-addr"},
			{Name: "http-allow-origin"},
			{Name: "http-trusted-proxy"},
			{Name: "http-hosts"},
			{Name: "http-peers"},
		}},
		{Title: "Cluster mode, several servers as one chat (docs/CLUSTER.md)", Flags: []cli.HelpFlag{
			{Name: "node", Text: "NAME\tThis node's name, unique in the cluster, defaults to HOST:PORT"},
			{Name: "cluster-listen", Text: "HOST:PORT\tEmbedded engine: this node's route address"},
			{Name: "cluster-peers", Text: "A,B,...\tEmbedded engine: the other nodes' route addresses"},
			{Name: "cluster-dir", Text: "DIR\tEmbedded engine: where it keeps its state, defaults to $XDG_STATE_HOME/gochatd/NODE (else ~/.local/state/gochatd/NODE)"},
			{Name: "cluster-secret-file", Text: "FILE\tEmbedded engine: the cluster's secret, the same file on every node (only nodes holding it may route); make one with head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE"},
			{Name: "cluster-insecure", Text: "Embedded engine: run without --cluster-secret-file (any NATS server that reaches the route port joins the cluster)"},
			{Name: "cluster-tls-cert", Text: "FILE\tEmbedded engine: mutual TLS on routes, with this node's PEM certificate"},
			{Name: "cluster-tls-key", Text: "FILE\tEmbedded engine: the PEM private key of --cluster-tls-cert"},
			{Name: "cluster-tls-ca", Text: "FILE\tEmbedded engine: the PEM CA that the other nodes' certificates must be signed by"},
			{Name: "nats", Text: "URL,URL,...\tExternal engine: the NATS servers (2.11 or newer, JetStream)"},
			{Name: "nats-creds", Text: "FILE\tExternal engine: NATS credentials"},
			{Name: "nats-tls-ca", Text: "FILE\tExternal engine: trust this CA for TLS to NATS"},
			{Name: "nats-tls-cert", Text: "FILE\tExternal engine: a client certificate for TLS to NATS"},
			{Name: "nats-tls-key", Text: "FILE\tExternal engine: the private key of --nats-tls-cert"},
			{Name: "cluster-name", Text: "NAME\tThe cluster's name (its NATS buckets and subjects)"},
			{Name: "cluster-wait", Text: "DURATION\tGive up joining the cluster after this long"},
			{Name: "cluster-replicas", Text: "N\tCopies of the registry in the engine (1 or 3), defaults to 3 when the engine has three servers or more, else 1"},
		}},
	},
}

func main() {
	os.Exit(profiled(func() int { return run(os.Args[1:], os.Stdout, os.Stderr) }))
}

// profiled runs f, writing a CPU profile of the whole run to the file
// named by GOCHATD_CPUPROFILE, if set, with %p replaced by the process id
// (docs/PERFORMANCE.md).
func profiled(f func() int) int {
	path := strings.ReplaceAll(os.Getenv("GOCHATD_CPUPROFILE"), "%p", strconv.Itoa(os.Getpid()))
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(out)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: GOCHATD_CPUPROFILE: %v\n", err)
		return 1
	}
	defer out.Close()
	defer pprof.StopCPUProfile()
	return f()
}

// run runs the server with args and the standard streams, and returns its
// exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c := newCommandLine()
	if code, done := cli.Parse(c.fs, args, c.help, stdout, stderr, c.check); done {
		return code
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, c.options(stdout, stderr)); err != nil {
		fmt.Fprintf(stderr, "server: %v\n", err)
		return 1
	}
	return 0
}

// commandLine is gochatd's flags and the values they set.
type commandLine struct {
	fs *pflag.FlagSet

	port                                   int
	addr, logLevel, logFormat              string
	cfg                                    server.Config
	maxFile, sendQueue, floodBytesBurst    cli.Size
	resumeBuffer                           cli.Size
	spoolMax, spoolMemory                  cli.Size
	floodBytes, paceBacklog, minUploadRate cli.Limit
	metricsAddr, tlsCert, tlsKey           string
	cluster                                cluster.Config
	web                                    *web.Flags
}

// clusterFlags are the flags of cluster mode: any of them given makes the
// server a node of a cluster.
var clusterFlags = []string{"node", "cluster-name", "cluster-listen", "cluster-peers", "cluster-dir", "cluster-secret-file", "cluster-insecure", "cluster-tls-cert", "cluster-tls-key", "cluster-tls-ca", "nats", "nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key", "cluster-wait", "cluster-replicas"}

// newCommandLine defines gochatd's flags, with the server's defaults.
func newCommandLine() *commandLine {
	c := &commandLine{fs: pflag.NewFlagSet("gochatd", pflag.ContinueOnError), cfg: server.DefaultConfig()}
	fs, cfg := c.fs, &c.cfg
	cli.IntVarP(fs, &c.port, "port", "p", 15000)
	fs.StringVarP(&c.addr, "address", "a", "localhost", "")
	cli.IntVarP(fs, &cfg.MaxClients, "max-clients", "", cfg.MaxClients)
	c.maxFile = cli.Size(cfg.MaxFileSize)
	fs.Var(&c.maxFile, "max-file-size", "")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", cfg.StallTimeout, "")
	c.sendQueue = cli.Size(cfg.SendQueueBytes)
	fs.Var(&c.sendQueue, "send-queue", "")
	fs.StringVar(&c.logLevel, "log-level", "info", "")
	fs.StringVar(&c.logFormat, "log-format", "text", "")
	fs.Float64Var(&cfg.FloodRate, "flood-rate", cfg.FloodRate, "")
	cli.IntVarP(fs, &cfg.FloodBurst, "flood-burst", "", cfg.FloodBurst)
	c.floodBytes = cli.Limit(cfg.FloodBytes)
	fs.Var(&c.floodBytes, "flood-bytes", "")
	c.floodBytesBurst = cli.Size(cfg.FloodBytesBurst)
	fs.Var(&c.floodBytesBurst, "flood-bytes-burst", "")
	c.paceBacklog = cli.Limit(cfg.PaceBacklog)
	fs.Var(&c.paceBacklog, "pace-backlog", "")
	fs.StringVar(&cfg.SpoolDir, "spool-dir", cfg.SpoolDir, "")
	c.spoolMax = cli.Size(cfg.SpoolMaxBytes)
	fs.Var(&c.spoolMax, "spool-max", "")
	c.spoolMemory = cli.Size(cfg.SpoolMemoryBytes)
	fs.Var(&c.spoolMemory, "spool-memory", "")
	c.minUploadRate = cli.Limit(cfg.MinUploadRate)
	fs.Var(&c.minUploadRate, "min-upload-rate", "")
	fs.DurationVar(&cfg.MinUploadWindow, "min-upload-window", cfg.MinUploadWindow, "")
	fs.DurationVar(&cfg.ResumeWindow, "resume-window", cfg.ResumeWindow, "")
	c.resumeBuffer = cli.Size(cfg.ResumeBuffer)
	fs.Var(&c.resumeBuffer, "resume-buffer", "")
	fs.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", cfg.HeartbeatTimeout, "")
	cli.IntVarP(fs, &cfg.MaxConnsPerAddr, "max-conns-per-ip", "", cfg.MaxConnsPerAddr)
	fs.BoolVar(&cfg.LimitLoopback, "limit-loopback", false, "")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "")
	fs.StringVar(&c.tlsKey, "tls-key", "", "")
	// Cluster mode (docs/CLUSTER.md).
	cl := &c.cluster
	fs.StringVar(&cl.Node, "node", "", "")
	fs.StringVar(&cl.Name, "cluster-name", cluster.DefaultName, "")
	fs.StringVar(&cl.Listen, "cluster-listen", "", "")
	fs.StringSliceVar(&cl.Peers, "cluster-peers", nil, "")
	fs.StringVar(&cl.Dir, "cluster-dir", "", "")
	fs.StringVar(&cl.SecretFile, "cluster-secret-file", "", "")
	fs.BoolVar(&cl.Insecure, "cluster-insecure", false, "")
	fs.StringVar(&cl.TLSCert, "cluster-tls-cert", "", "")
	fs.StringVar(&cl.TLSKey, "cluster-tls-key", "", "")
	fs.StringVar(&cl.TLSCA, "cluster-tls-ca", "", "")
	fs.StringSliceVar(&cl.NATS, "nats", nil, "")
	fs.StringVar(&cl.NATSCreds, "nats-creds", "", "")
	fs.StringVar(&cl.NATSCA, "nats-tls-ca", "", "")
	fs.StringVar(&cl.NATSCert, "nats-tls-cert", "", "")
	fs.StringVar(&cl.NATSKey, "nats-tls-key", "", "")
	fs.DurationVar(&cl.Wait, "cluster-wait", cluster.DefaultWait, "")
	cli.IntVarP(fs, &cl.Replicas, "cluster-replicas", "", 0)
	c.web = web.AddFlags(fs)
	return c
}

// help writes the help of -h.
func (c *commandLine) help(w io.Writer) { serverHelp.Write(w, c.fs) }

// clustered reports whether a flag of cluster mode was given.
func (c *commandLine) clustered() bool {
	for _, f := range clusterFlags {
		if c.fs.Changed(f) {
			return true
		}
	}
	return false
}

// check validates the parsed values, and gives --pace-backlog its default
// (2M, or a quarter of --send-queue if that is less) unless it was given.
func (c *commandLine) check() error {
	cfg := &c.cfg
	if err := cli.CheckPort(c.port, 0); err != nil {
		return err
	}
	if cfg.MaxClients < 1 {
		return fmt.Errorf("--max-clients must be at least 1")
	}
	if cfg.JoinTimeout <= 0 || cfg.StallTimeout <= 0 {
		return fmt.Errorf("--join-timeout and --stall-timeout must be positive")
	}
	if c.sendQueue > 1<<40 {
		return fmt.Errorf("--send-queue too large")
	}
	if !c.fs.Changed("pace-backlog") {
		c.paceBacklog = min(c.paceBacklog, cli.Limit(c.sendQueue/4))
	}
	if int64(c.paceBacklog) >= int64(c.sendQueue) {
		return fmt.Errorf("--pace-backlog must be below --send-queue")
	}
	if cfg.FloodRate < 0 || cfg.FloodBurst < 1 || cfg.MaxConnsPerAddr < 0 {
		return fmt.Errorf("--flood-rate, --flood-burst and --max-conns-per-ip take positive values")
	}
	if fi, err := os.Stat(cfg.SpoolDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--spool-dir %s is not a folder", cfg.SpoolDir)
	}
	if c.spoolMax < 1 || c.spoolMemory < 1 || cfg.MinUploadWindow <= 0 {
		return fmt.Errorf("--spool-max, --spool-memory and --min-upload-window must be positive")
	}
	if !c.fs.Changed("resume-buffer") {
		c.resumeBuffer = min(c.resumeBuffer, c.sendQueue/2)
	}
	if cfg.ResumeWindow < 0 || c.resumeBuffer < 1 || int64(c.resumeBuffer) > int64(c.sendQueue)/2 {
		return fmt.Errorf("--resume-window must not be negative, --resume-buffer from 1 byte to half of --send-queue")
	}
	if cfg.HeartbeatTimeout != 0 && cfg.HeartbeatTimeout < 100*time.Millisecond {
		return fmt.Errorf("--heartbeat-timeout must be 0 (off) or at least 100ms")
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.clustered() {
		c.cluster.MaxClients = cfg.MaxClients
		if err := c.cluster.Check(); err != nil {
			return err
		}
	}
	_, err := cli.Logger(io.Discard, c.logFormat, c.logLevel)
	return err
}

// options returns what the parsed and checked flags ask daemon.Run for,
// the server's event lines going to stdout and its logs to stderr.
func (c *commandLine) options(stdout, stderr io.Writer) daemon.Options {
	cfg := c.cfg
	cfg.MaxFileSize = int64(c.maxFile)
	cfg.SendQueueBytes = int(c.sendQueue)
	cfg.ResumeBuffer = int(c.resumeBuffer)
	cfg.FloodBytes = float64(c.floodBytes)
	cfg.FloodBytesBurst = int64(c.floodBytesBurst)
	cfg.PaceBacklog = int(c.paceBacklog)
	cfg.SpoolMaxBytes = int64(c.spoolMax)
	cfg.SpoolMemoryBytes = int64(c.spoolMemory)
	cfg.MinUploadRate = float64(c.minUploadRate)
	cfg.Stdout = stdout
	cfg.Logger, _ = cli.Logger(stderr, c.logFormat, c.logLevel) // check has tried it
	o := daemon.Options{
		ChatAddr:      net.JoinHostPort(c.addr, strconv.Itoa(c.port)),
		ChatAddrGiven: c.fs.Changed("port") || c.fs.Changed("address"),
		Server:        cfg,
		TLSCert:       c.tlsCert,
		TLSKey:        c.tlsKey,
		MetricsAddr:   c.metricsAddr,
		Web:           *c.web,
	}
	if c.clustered() {
		cl := c.cluster
		o.Cluster = &cl
	}
	return o
}
