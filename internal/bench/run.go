// Package bench is the logic of cmd/chatbench: workloads that speak the
// chat protocol over loopback to a server started in-process, in its own
// process, or already running, each beside a baseline (an embedded
// nats-server, or a plain loopback TCP copy), and the tables they print.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// Main runs the tool with the command line args and returns its exit
// status.
func Main(args []string, stdout, stderr io.Writer) int {
	cfg, err := ParseArgs(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 1
	}
	return 0
}

// Run runs the workloads of cfg and prints their figures on stdout
// (progress goes to stderr).
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if _, ok := stderr.(*os.File); !ok {
		// Spawned servers and workers write to it, each from a
		// goroutine of os/exec's unless it is a file.
		stderr = &lockedWriter{w: stderr}
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	info := MachineInfo()
	if cfg.CSV {
		fmt.Fprintln(stderr, info)
	} else {
		fmt.Fprintln(stdout, info)
		fmt.Fprintln(stdout)
	}
	var rows []Row
	var failed []string
	for _, name := range cfg.Workloads {
		w, _ := workloadNamed(name) // Validate knows them all
		runs := w.runs
		if cfg.Cluster > 0 && w.clusterRuns != nil {
			runs = w.clusterRuns
		}
		for j := range runs(cfg, stderr) {
			r, err := j.do(ctx, stderr)
			rows = append(rows, r...)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
				failed = append(failed, name)
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	var err error
	if cfg.CSV {
		err = WriteCSV(stdout, rows)
	} else {
		err = WriteTable(stdout, rows)
	}
	if err != nil {
		return err
	}
	if cfg.MemProfile != "" {
		f, err := os.Create(cfg.MemProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer // guarded by mu
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// MachineInfo describes the machine and its load on one line.
func MachineInfo() string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	load := "?"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("# %s %s/%s, %d CPUs (%s), load average %s, %s",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpu, load, time.Now().UTC().Format(time.RFC3339))
}
