// Command gochatd is the chat server of PROTOCOL.md (the course's "server").
package main

import (
	"context"
	"crypto/tls"
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

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/activation"
	"github.com/gochat/chat/internal/cli"
	"github.com/gochat/chat/internal/cluster"
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

func run(args []string, stdout, stderr io.Writer) int {
	cfg := server.DefaultConfig()
	fs := pflag.NewFlagSet("gochatd", pflag.ContinueOnError)
	help := func(w io.Writer) { serverHelp.Write(w, fs) }
	port := new(int)
	cli.IntVarP(fs, port, "port", "p", 15000)
	addr := fs.StringP("address", "a", "localhost", "")
	cli.IntVarP(fs, &cfg.MaxClients, "max-clients", "", cfg.MaxClients)
	maxFile := cli.Size(cfg.MaxFileSize)
	fs.Var(&maxFile, "max-file-size", "")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", cfg.StallTimeout, "")
	sendQueue := cli.Size(cfg.SendQueueBytes)
	fs.Var(&sendQueue, "send-queue", "")
	logLevel := fs.String("log-level", "info", "")
	logFormat := fs.String("log-format", "text", "")
	fs.Float64Var(&cfg.FloodRate, "flood-rate", cfg.FloodRate, "")
	cli.IntVarP(fs, &cfg.FloodBurst, "flood-burst", "", cfg.FloodBurst)
	floodBytes := cli.Limit(cfg.FloodBytes)
	fs.Var(&floodBytes, "flood-bytes", "")
	floodBytesBurst := cli.Size(cfg.FloodBytesBurst)
	fs.Var(&floodBytesBurst, "flood-bytes-burst", "")
	paceBacklog := cli.Limit(cfg.PaceBacklog)
	fs.Var(&paceBacklog, "pace-backlog", "")
	fs.StringVar(&cfg.SpoolDir, "spool-dir", cfg.SpoolDir, "")
	spoolMax := cli.Size(cfg.SpoolMaxBytes)
	fs.Var(&spoolMax, "spool-max", "")
	spoolMemory := cli.Size(cfg.SpoolMemoryBytes)
	fs.Var(&spoolMemory, "spool-memory", "")
	minUploadRate := cli.Limit(cfg.MinUploadRate)
	fs.Var(&minUploadRate, "min-upload-rate", "")
	fs.DurationVar(&cfg.MinUploadWindow, "min-upload-window", cfg.MinUploadWindow, "")
	fs.DurationVar(&cfg.ResumeWindow, "resume-window", cfg.ResumeWindow, "")
	resumeBuffer := cli.Size(cfg.ResumeBuffer)
	fs.Var(&resumeBuffer, "resume-buffer", "")
	cli.IntVarP(fs, &cfg.MaxConnsPerAddr, "max-conns-per-ip", "", cfg.MaxConnsPerAddr)
	fs.BoolVar(&cfg.LimitLoopback, "limit-loopback", false, "")
	metricsAddr := fs.String("metrics-addr", "", "")
	tlsCert := fs.String("tls-cert", "", "")
	tlsKey := fs.String("tls-key", "", "")
	// Cluster mode (docs/CLUSTER.md).
	var cl cluster.Config
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
	clustered := func() bool {
		for _, f := range []string{"node", "cluster-name", "cluster-listen", "cluster-peers", "cluster-dir", "cluster-secret-file", "cluster-insecure", "cluster-tls-cert", "cluster-tls-key", "cluster-tls-ca", "nats", "nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key", "cluster-wait", "cluster-replicas"} {
			if fs.Changed(f) {
				return true
			}
		}
		return false
	}
	webFlags := web.AddFlags(fs)
	check := func() error {
		if err := cli.CheckPort(*port, 0); err != nil {
			return err
		}
		if cfg.MaxClients < 1 {
			return fmt.Errorf("--max-clients must be at least 1")
		}
		if cfg.JoinTimeout <= 0 || cfg.StallTimeout <= 0 {
			return fmt.Errorf("--join-timeout and --stall-timeout must be positive")
		}
		if sendQueue > 1<<40 {
			return fmt.Errorf("--send-queue too large")
		}
		if !fs.Changed("pace-backlog") {
			paceBacklog = min(paceBacklog, cli.Limit(sendQueue/4))
		}
		if int64(paceBacklog) >= int64(sendQueue) {
			return fmt.Errorf("--pace-backlog must be below --send-queue")
		}
		if cfg.FloodRate < 0 || cfg.FloodBurst < 1 || cfg.MaxConnsPerAddr < 0 {
			return fmt.Errorf("--flood-rate, --flood-burst and --max-conns-per-ip take positive values")
		}
		if fi, err := os.Stat(cfg.SpoolDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--spool-dir %s is not a folder", cfg.SpoolDir)
		}
		if spoolMax < 1 || spoolMemory < 1 || cfg.MinUploadWindow <= 0 {
			return fmt.Errorf("--spool-max, --spool-memory and --min-upload-window must be positive")
		}
		if !fs.Changed("resume-buffer") {
			resumeBuffer = min(resumeBuffer, cli.Size(sendQueue/2))
		}
		if cfg.ResumeWindow < 0 || resumeBuffer < 1 || int64(resumeBuffer) > int64(sendQueue)/2 {
			return fmt.Errorf("--resume-window must not be negative, --resume-buffer from 1 byte to half of --send-queue")
		}
		if (*tlsCert == "") != (*tlsKey == "") {
			return fmt.Errorf("--tls-cert and --tls-key go together")
		}
		if clustered() {
			cl.MaxClients = cfg.MaxClients
			if err := cl.Check(); err != nil {
				return err
			}
		}
		_, err := cli.Logger(io.Discard, *logFormat, *logLevel)
		return err
	}
	if code, done := cli.Parse(fs, args, help, stdout, stderr, check); done {
		return code
	}
	// The chat port opens first, before anything else is built: a course
	// harness connects 10 ms after it starts the server, and a connection
	// succeeds once listen(2) has run, Accept or not (issue 19). In
	// cluster mode it opens only once the node is part of the cluster.
	chatAddr := net.JoinHostPort(*addr, strconv.Itoa(*port))
	passed, err := activation.Listeners(activation.Chat, activation.HTTP, activation.Metrics)
	if err == nil {
		given := map[string]flagAddr{}
		if fs.Changed("port") || fs.Changed("address") {
			given[activation.Chat] = flagAddr{chatAddr, "-p/-a"}
		}
		if webFlags.Addr != "" {
			given[activation.HTTP] = flagAddr{webFlags.Addr, "--http-addr"}
		}
		if *metricsAddr != "" {
			given[activation.Metrics] = flagAddr{*metricsAddr, "--metrics-addr"}
		}
		err = agree(passed, given)
	}
	if err != nil {
		closeAll(passed)
		fmt.Fprintf(stderr, "server: socket activation: %v\n", err)
		return 1
	}
	var chatTCP net.Listener // the chat port's socket, TLS not yet added
	if ln, ok := passed[activation.Chat]; ok {
		chatTCP = server.Inherited(ln.(*net.TCPListener), nil)
	} else if !clustered() {
		if chatTCP, err = server.Listen(context.Background(), chatAddr, nil); err != nil {
			closeAll(passed)
			fmt.Fprintf(stderr, "server: cannot listen: %v\n", err)
			return 1
		}
	}
	defer func() {
		if chatTCP != nil {
			chatTCP.Close() // the server has closed it already if it served
		}
		closeAll(passed)
	}()
	logger, _ := cli.Logger(stderr, *logFormat, *logLevel)

	cfg.MaxFileSize = int64(maxFile)
	cfg.SendQueueBytes = int(sendQueue)
	cfg.ResumeBuffer = int(resumeBuffer)
	cfg.FloodBytes = float64(floodBytes)
	cfg.FloodBytesBurst = int64(floodBytesBurst)
	cfg.PaceBacklog = int(paceBacklog)
	cfg.SpoolMaxBytes = int64(spoolMax)
	cfg.SpoolMemoryBytes = int64(spoolMemory)
	cfg.MinUploadRate = float64(minUploadRate)
	cfg.Stdout = stdout
	cfg.Logger = logger
	var tlsCfg *tls.Config
	if *tlsCert != "" {
		var err error
		if tlsCfg, err = server.LoadTLS(*tlsCert, *tlsKey); err != nil {
			fmt.Fprintf(stderr, "server: %v\n", err)
			return 1
		}
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var node *cluster.Node
	if clustered() {
		cl.ChatAddr, cl.StallTimeout, cl.PaceBacklog, cl.Logger = chatAddr, cfg.StallTimeout, cfg.PaceBacklog, logger
		if chatTCP != nil {
			cl.ChatAddr = chatTCP.Addr().String()
		}
		var err error
		if node, err = cluster.Start(ctx, cl); err != nil {
			fmt.Fprintf(stderr, "server: cluster: %v\n", err)
			return 1
		}
		defer node.Close()
		cfg.Hub = node.Hub()
	}
	srv := server.New(cfg)
	if node != nil {
		if err := node.Register(srv.Registry()); err != nil {
			fmt.Fprintf(stderr, "server: %v\n", err)
			return 1
		}
	}
	if chatTCP == nil {
		if chatTCP, err = server.Listen(context.Background(), chatAddr, nil); err != nil {
			fmt.Fprintf(stderr, "server: cannot listen: %v\n", err)
			return 1
		}
	}
	ln := chatTCP
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "max_clients", cfg.MaxClients, "tls", tlsCfg != nil, "cluster", node != nil, "passed", passed[activation.Chat] != nil)
	// The HTTP listeners (metrics, web) limit connections per address as
	// the chat port does (issue 23).
	webFlags.Limits = web.Limits{MaxConnsPerAddr: cfg.MaxConnsPerAddr, LimitLoopback: cfg.LimitLoopback}
	if mln, ok := passed[activation.Metrics]; ok || *metricsAddr != "" {
		if !ok {
			if mln, err = net.Listen("tcp", *metricsAddr); err != nil {
				fmt.Fprintf(stderr, "server: cannot listen for metrics: %v\n", err)
				return 1
			}
		}
		metrics, err := web.MetricsHandler(promhttp.HandlerFor(srv.Registry(), promhttp.HandlerOpts{}), webFlags.MetricsTokenFile)
		if err != nil {
			mln.Close()
			fmt.Fprintf(stderr, "server: %v\n", err)
			return 1
		}
		logger.Info("serving metrics", "addr", "http://"+mln.Addr().String()+"/metrics", "token", webFlags.MetricsTokenFile != "")
		defer web.ServeMetrics(mln, metrics, webFlags.Limits, logger).Close()
	}
	if hln, ok := passed[activation.HTTP]; ok {
		webFlags.Inherited = hln.(*net.TCPListener)
	}

	webFront, err := webFlags.Start(srv.Serve, tlsCfg, cfg.MaxFileSize, logger)
	if err != nil {
		fmt.Fprintf(stderr, "server: cannot serve the web client: %v\n", err)
		return 1
	}
	defer webFront.Stop()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "server: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown incomplete", "err", err)
	}
	<-served
	return 0
}

// flagAddr is an address the command line gave, and the flags that gave it.
type flagAddr struct{ addr, flags string }

// agree checks each passed socket against the address its flags gave, if
// they gave one: the socket is taken over the flags, but only when they do
// not contradict it (docs/OPERATIONS.md, "Socket activation").
func agree(passed map[string]net.Listener, given map[string]flagAddr) error {
	for role, ln := range passed {
		g, ok := given[role]
		if !ok {
			continue
		}
		if err := activation.Agree(context.Background(), ln, g.addr); err != nil {
			return fmt.Errorf("the %s socket passed in does not agree with %s %s: %w", role, g.flags, g.addr, err)
		}
	}
	return nil
}

// closeAll closes the passed sockets that are still open.
func closeAll(passed map[string]net.Listener) {
	for _, ln := range passed {
		ln.Close()
	}
}
