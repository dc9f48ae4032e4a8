package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gochat/chat/internal/cluster"
	"github.com/gochat/chat/internal/freeport"
	"github.com/gochat/chat/internal/server"
)

// target is a chat server under test.
type target struct {
	Addr string
	PID  int    // 0 when its RSS cannot be read
	Node string // its name in a cluster; "" for a lone server
	// metricsAddr serves the node's Prometheus metrics (a cluster's
	// nodes, for the failover workload); "" for none.
	metricsAddr string
	// wsURL is the WebSocket endpoint of a server with the web front
	// end on (ws://127.0.0.1:PORT/ws); "" for none.
	wsURL string
	stop  func()
	// exited is closed when a spawned server's process has ended; nil
	// for a server the tool did not spawn.
	exited chan struct{}
}

// Close stops the server if the tool started it.
func (t *target) Close() {
	if t.stop != nil {
		t.stop()
	}
}

// inProcess starts the server in this process, as the throughput and
// latency workloads do by default: its stdout lines are still formatted
// and written, to io.Discard. Flood control and pacing (policies rather
// than costs) are off, as --flood-rate 0 --flood-bytes 0 --pace-backlog 0
// do, unless limits is set: then the server has its default settings.
func inProcess(maxClients int, limits bool) (*target, error) {
	cfg := server.Config{}
	if limits {
		cfg = server.DefaultConfig()
	}
	cfg.MaxClients, cfg.Stdout = maxClients, io.Discard
	srv := server.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(done)
	}()
	return &target{Addr: ln.Addr().String(), stop: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}}, nil
}

// ServerCommand is the hidden first argument that makes the tool run the
// chat server itself (as cmd/gochatd does), for the workloads that need it
// in its own process.
const ServerCommand = "_server"

// freePorts returns k distinct loopback ports that were free a moment
// ago (freeport.Pick).
func freePorts(k int) ([]int, error) {
	ports := make([]int, k)
	for i := range ports {
		p, err := freeport.Pick()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}

// serverArgs returns the flags of a spawned server chatting on port:
// the defaults of cmd/gochatd but for flood control, which is off.
func serverArgs(port, maxClients int) []string {
	return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "--max-clients", strconv.Itoa(maxClients), "--log-level", "warn", "--flood-rate", "0"}
}

// spawnServer starts the server in its own process: bin (the cmd/gochatd
// binary) or, when bin is "", this tool re-executed with ServerCommand.
// Its stdout goes to /dev/null, its stderr to ours.
func spawnServer(ctx context.Context, bin string, maxClients int, stderr io.Writer, extra ...string) (*target, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	t, err := startServer(bin, append(serverArgs(ports[0], maxClients), extra...), ports[0], stderr)
	if err != nil {
		return nil, err
	}
	if err := t.waitAccepting(ctx, 10*time.Second); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// startServer starts bin (or this tool as ServerCommand) with args; the
// server will chat on 127.0.0.1:port. It does not wait for it.
func startServer(bin string, args []string, port int, stderr io.Writer) (*target, error) {
	bin, args, err := orSelf(bin, ServerCommand, args)
	if err != nil {
		return nil, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = null
	cmd.Stderr = stderr
	exited, stop, err := startTerminable(cmd, 15*time.Second)
	if err != nil {
		return nil, err
	}
	return &target{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), PID: cmd.Process.Pid, stop: stop, exited: exited}, nil
}

// waitAccepting waits, at most wait, until the spawned server t accepts
// connections.
func (t *target) waitAccepting(ctx context.Context, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.Addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-t.exited:
			return fmt.Errorf("server %s exited at start", t.describe())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server %s does not accept after %v: %w", t.describe(), wait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (t *target) describe() string {
	if t.Node != "" {
		return t.Node + " at " + t.Addr
	}
	return "at " + t.Addr
}

// ServerProfileEnv names the environment variable that, for the server
// this tool spawns of itself (no --server-bin), holds a file to write the
// server process's CPU profile to.
const ServerProfileEnv = "CHATBENCH_SERVER_CPUPROFILE"

// ServerMemProfileEnv names the environment variable that, for the server
// this tool spawns of itself, holds a file to write a heap profile to when
// it gets SIGUSR1 (the scale workload sends it with every client idle); a
// summary of its memory goes to stderr.
const ServerMemProfileEnv = "CHATBENCH_SERVER_MEMPROFILE"

func writeMemReport(path string, stderr io.Writer) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Fprintf(stderr, "server memory: goroutines=%d heap_inuse=%d heap_alloc=%d stack_inuse=%d sys=%d\n",
		runtime.NumGoroutine(), m.HeapInuse, m.HeapAlloc, m.StackInuse, m.Sys)
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return
	}
	defer f.Close()
	pprof.Lookup("heap").WriteTo(f, 0)
}

// serverFlags are the flags RunServer takes: a subset of cmd/gochatd's.
type serverFlags struct {
	addr     string
	port     int
	cfg      server.Config
	level    slog.Level
	cluster  cluster.Config // used when cluster.Node is set
	profile  string         // CPU profile path (ServerProfileEnv)
	memProf  string         // heap profile path (ServerMemProfileEnv)
	describe string         // how its diagnostics name it
}

// flagPairs calls set with each flag of args, which are pairs of a flag
// and its value (the hidden commands' flags: what the tool passes them
// needs no more). Its error names the flag.
func flagPairs(args []string, set func(flag, value string) error) error {
	if len(args)%2 != 0 {
		return fmt.Errorf("%s: flag without a value", args[len(args)-1])
	}
	for i := 0; i < len(args); i += 2 {
		if err := set(args[i], args[i+1]); err != nil {
			return fmt.Errorf("%s %s: %v", args[i], args[i+1], err)
		}
	}
	return nil
}

// parseServerFlags parses RunServer's args: pairs of flag and value.
// The server gets cmd/gochatd's defaults; a cluster node's profiles go to
// the paths of the environment with ".<node>" added.
func parseServerFlags(args []string, getenv func(string) string) (serverFlags, error) {
	f := serverFlags{addr: "127.0.0.1", cfg: server.DefaultConfig(), level: slog.LevelInfo, describe: "chatbench " + ServerCommand}
	f.cluster.Wait = cluster.DefaultWait
	err := flagPairs(args, func(flag, v string) (err error) {
		switch flag {
		case "-a":
			f.addr = v
		case "-p":
			f.port, err = strconv.Atoi(v)
		case "--max-clients":
			f.cfg.MaxClients, err = strconv.Atoi(v)
		case "--log-level":
			err = f.level.UnmarshalText([]byte(v))
		case "--flood-rate":
			f.cfg.FloodRate, err = strconv.ParseFloat(v, 64)
		case "--node":
			f.cluster.Node = v
		case "--cluster-listen":
			f.cluster.Listen = v
		case "--cluster-peers":
			f.cluster.Peers = strings.Split(v, ",")
		case "--cluster-dir":
			f.cluster.Dir = v
		case "--cluster-secret-file":
			f.cluster.SecretFile = v
		case "--cluster-wait":
			f.cluster.Wait, err = time.ParseDuration(v)
		default:
			err = errors.New("unknown flag")
		}
		return err
	})
	if err != nil {
		return f, err
	}
	if err := CheckLoopback(net.JoinHostPort(f.addr, strconv.Itoa(max(f.port, 1)))); err != nil {
		return f, err
	}
	f.profile, f.memProf = getenv(ServerProfileEnv), getenv(ServerMemProfileEnv)
	if n := f.cluster.Node; n != "" {
		f.cluster.MaxClients = f.cfg.MaxClients
		if err := f.cluster.Check(); err != nil {
			return f, err
		}
		for _, p := range []*string{&f.profile, &f.memProf} {
			if *p != "" {
				*p += "." + n
			}
		}
		f.describe += " " + n
	}
	return f, nil
}

// RunServer runs the chat server as cmd/gochatd would, with its defaults,
// for ServerCommand: flags -a, -p, --max-clients, --log-level,
// --flood-rate (0: off), and for a cluster node --node, --cluster-listen,
// --cluster-peers, --cluster-dir, --cluster-secret-file and --cluster-wait.
func RunServer(args []string, stdout, stderr io.Writer) int {
	f, err := parseServerFlags(args, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "chatbench %s: %v\n", ServerCommand, err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: f.level}))
	cfg := f.cfg
	cfg.Stdout = stdout // *os.File: each batch of lines is one write, as in cmd/gochatd
	cfg.Logger = logger
	if f.profile != "" {
		pf, err := os.Create(f.profile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	chatAddr := net.JoinHostPort(f.addr, strconv.Itoa(f.port))
	var node *cluster.Node
	if f.cluster.Node != "" {
		// As cmd/gochatd: the chat port opens once the node is part of
		// the cluster.
		cl := f.cluster
		cl.ChatAddr, cl.StallTimeout, cl.PaceBacklog, cl.Logger = chatAddr, cfg.StallTimeout, cfg.PaceBacklog, logger
		if node, err = cluster.Start(ctx, cl); err != nil {
			fmt.Fprintf(stderr, "%s: cluster: %v\n", f.describe, err)
			return 1
		}
		defer node.Close()
		cfg.Hub = node.Hub()
	}
	srv := server.New(cfg)
	ln, err := net.Listen("tcp", chatAddr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	go srv.Serve(ln)
	if f.memProf != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() { // ends when the process does
			for range usr1 {
				writeMemReport(f.memProf, stderr)
			}
		}()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return 0
}

// readRSS returns the resident set size of process pid in bytes, from
// /proc/<pid>/status.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseStatusKB(string(b), "VmRSS:")
}

// parseStatusKB returns the value of a "Key:   1234 kB" line in bytes.
func parseStatusKB(status, key string) (int64, error) {
	for line := range strings.SplitSeq(status, "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("bad %s line %q", key, line)
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return v << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}

// openFilesLimit returns the soft limit on open files of process pid,
// from /proc/<pid>/limits; -1 for unlimited.
func openFilesLimit(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, err
	}
	return parseOpenFilesLimit(string(b))
}

func parseOpenFilesLimit(limits string) (int64, error) {
	for line := range strings.SplitSeq(limits, "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			if f[0] == "unlimited" {
				return -1, nil
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no Max open files line")
}

// rssSampler records the peak RSS of a process.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	peak int64
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := readRSS(pid); err == nil {
				s.peak = max(s.peak, v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// watchRSS reads the RSS of process pid, then samples its peak every
// 10 ms until the sampler's Peak; for pid 0 (a server in this process, or
// an external one without --server-pid) it returns 0 and a nil sampler,
// whose Peak is 0.
func watchRSS(pid int) (int64, *rssSampler, error) {
	if pid == 0 {
		return 0, nil, nil
	}
	base, err := readRSS(pid)
	if err != nil {
		return 0, nil, err
	}
	return base, sampleRSS(pid, 10*time.Millisecond), nil
}

// Peak stops sampling and returns the peak.
func (s *rssSampler) Peak() int64 {
	if s == nil {
		return 0
	}
	close(s.stop)
	<-s.done
	if v, err := readRSS(s.pid); err == nil {
		s.peak = max(s.peak, v)
	}
	return s.peak
}

// cpuMeter reads the CPU time of the server processes it holds.
type cpuMeter []int

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux ABI Go supports).
const userHZ = 100

// seconds returns the CPU time, user and system, that the processes have
// used so far; NaN if there are none or one cannot be read.
func (m cpuMeter) seconds() float64 {
	if len(m) == 0 {
		return math.NaN()
	}
	var ticks int64
	for _, pid := range m {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return math.NaN()
		}
		t, err := parseStatCPU(string(b))
		if err != nil {
			return math.NaN()
		}
		ticks += t
	}
	return float64(ticks) / userHZ
}

// parseStatCPU returns utime + stime (fields 14 and 15) of a
// /proc/<pid>/stat line, in clock ticks. The command name (field 2) may
// hold spaces and parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	var sum int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("stat: bad time %q", s)
		}
		sum += v
	}
	return sum, nil
}

// pidsOf returns the meter of the spawned servers among nodes.
func pidsOf(nodes []*target) cpuMeter {
	var m cpuMeter
	for _, t := range nodes {
		if t.PID != 0 && !slices.Contains(m, t.PID) {
			m = append(m, t.PID)
		}
	}
	return m
}
