package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gochat/chat/internal/server"
)

// target is a chat server under test.
type target struct {
	Addr string
	PID  int // 0 when its RSS cannot be read
	stop func()
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

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// spawnServer starts the server in its own process: bin (the cmd/gochatd
// binary) or, when bin is "", this tool re-executed with ServerCommand.
// Its stdout goes to /dev/null, its stderr to ours.
// Extra arguments go to the server as they are.
func spawnServer(ctx context.Context, bin string, maxClients int, stderr io.Writer, extra ...string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "--max-clients", strconv.Itoa(maxClients), "--log-level", "warn", "--flood-rate", "0"}
	args = append(args, extra...)
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
		args = append([]string{ServerCommand}, args...)
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = null
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	t := &target{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), PID: cmd.Process.Pid, stop: stop}
	// Wait until it accepts.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t.Addr)
		if err == nil {
			c.Close()
			return t, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("server %s exited at start", bin)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, fmt.Errorf("server %s does not accept: %w", bin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// RunServer runs the chat server as cmd/gochatd would, for ServerCommand:
// flags -a, -p, --max-clients, --log-level, --flood-rate (0: off).
func RunServer(args []string, stdout, stderr io.Writer) int {
	addr, port, maxClients, level := "127.0.0.1", 0, server.DefaultMaxClients, slog.LevelInfo
	flood := float64(server.DefaultFloodRate)
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		var err error
		switch args[i] {
		case "-a":
			addr = v
		case "-p":
			port, err = strconv.Atoi(v)
		case "--max-clients":
			maxClients, err = strconv.Atoi(v)
		case "--log-level":
			err = level.UnmarshalText([]byte(v))
		case "--flood-rate":
			flood, err = strconv.ParseFloat(v, 64)
		default:
			err = errors.New("unknown flag")
		}
		if err != nil {
			fmt.Fprintf(stderr, "chatbench %s: %s %s: %v\n", ServerCommand, args[i], v, err)
			return 1
		}
	}
	if err := CheckLoopback(net.JoinHostPort(addr, strconv.Itoa(max(port, 1)))); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv := server.New(server.Config{
		MaxClients: maxClients,
		Stdout:     stdout, // *os.File: each batch of lines is one write, as in cmd/gochatd
		FloodRate:  flood,
		Logger:     slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if path := os.Getenv(ServerProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go srv.Serve(ln)
	if path := os.Getenv(ServerMemProfileEnv); path != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeMemReport(path, stderr)
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

// Peak stops sampling and returns the peak.
func (s *rssSampler) Peak() int64 {
	close(s.stop)
	<-s.done
	if v, err := readRSS(s.pid); err == nil {
		s.peak = max(s.peak, v)
	}
	return s.peak
}
