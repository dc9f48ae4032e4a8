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
	"math"
	"os"
	"os/signal"
	"path/filepath"
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
	for _, w := range cfg.Workloads {
		var r []Row
		var err error
		switch {
		case cfg.Cluster > 0 && w == Throughput:
			r, err = clusterThroughputRows(ctx, cfg, stderr)
		case cfg.Cluster > 0 && w == Latency:
			r, err = clusterLatencyRows(ctx, cfg, stderr)
		case cfg.Cluster > 0 && w == Scale:
			r, err = clusterScaleRows(ctx, cfg, stderr)
		case cfg.Cluster > 0 && w == Files:
			r, err = clusterFilesRows(ctx, cfg, stderr)
		case w == Throughput:
			r, err = throughputRows(ctx, cfg, stderr)
		case w == Latency:
			r, err = latencyRows(ctx, cfg, stderr)
		case w == Scale:
			r, err = scaleRows(ctx, cfg, stderr)
		case w == Files:
			r, err = filesRows(ctx, cfg, stderr)
		case w == Web:
			r, err = webRows(ctx, cfg, stderr)
		case w == Startup:
			r, err = startupRows(ctx, cfg, stderr)
		case w == Storm:
			r, err = stormRows(ctx, cfg, stderr)
		case w == Failover:
			r, err = failoverRows(ctx, cfg, stderr)
		}
		rows = append(rows, r...)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", w, err)
			failed = append(failed, w)
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

// chatTarget returns the server for the throughput and latency workloads:
// the external one, or one in this process.
func chatTarget(cfg Config) (*target, error) {
	if cfg.ServerAddr != "" {
		return &target{Addr: cfg.ServerAddr, PID: cfg.ServerPID}, nil
	}
	return inProcess(1<<20, cfg.Limits)
}

// ownTarget returns the server for the scale and files workloads: the
// external one, or one spawned in its own process.
func ownTarget(ctx context.Context, cfg Config, maxClients int, stderr io.Writer) (*target, error) {
	if cfg.ServerAddr != "" {
		return &target{Addr: cfg.ServerAddr, PID: cfg.ServerPID}, nil
	}
	return spawnServer(ctx, cfg.ServerBin, maxClients, stderr)
}

func durParam(cfg Config) string {
	return fmt.Sprintf("duration=%v warmup=%v", cfg.Duration, cfg.Warmup)
}

// loadParam returns the machine's 1-minute load average, to show with
// each run: other work on the machine moves the figures, tails most.
func loadParam() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return "load=" + f[0]
	}
	return "load=?"
}

// joinRateParam shows --join-rate when it is set.
func joinRateParam(cfg Config) string {
	if cfg.JoinRate == 0 {
		return ""
	}
	return fmt.Sprintf(" join-rate=%g/s", cfg.JoinRate)
}

func targetParam(cfg Config) string {
	if cfg.ServerAddr != "" {
		return "server=" + cfg.ServerAddr
	}
	if cfg.Limits {
		return "server=in-process limits=default"
	}
	return "server=in-process"
}

func throughputRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	for _, n := range cfg.Clients {
		for _, size := range cfg.Sizes {
			for _, r := range cfg.Recipients {
				if r > n {
					continue
				}
				params := fmt.Sprintf("clients=%d size=%dB recipients=%d %s %s %s", n, size, r, durParam(cfg), targetParam(cfg), loadParam())
				fmt.Fprintf(stderr, "throughput %s ...\n", params)
				t, err := chatTarget(cfg)
				if err != nil {
					return rows, err
				}
				ours, err := runThroughput(ctx, newChatSystem(t.Addr, cfg.SrcAddrs, 64<<10, 32<<10), everyone(n, r), size, cfg.Warmup, cfg.Duration, nil)
				t.Close()
				if err != nil {
					return rows, fmt.Errorf("chat: %w", err)
				}
				theirs := tpResult{Delivered: math.NaN(), MBps: math.NaN(), Sent: math.NaN()}
				baseName := ""
				if !cfg.NoBaseline {
					baseName = "nats-server"
					ns, err := newNATSSystem()
					if err != nil {
						return rows, err
					}
					theirs, err = runThroughput(ctx, ns, everyone(n, r), size, cfg.Warmup, cfg.Duration, nil)
					if err != nil {
						return rows, fmt.Errorf("nats: %w", err)
					}
				}
				row := func(metric, unit string, o, b float64, target string) Row {
					return Row{Workload: Throughput, Params: params, Baseline: baseName, Metric: metric, Unit: unit, Ours: o, Base: b, Target: target}
				}
				rows = append(rows, tpRows(row, n, size, r, ours, theirs)...)
			}
		}
	}
	return rows, nil
}

// tpRows are the rows of one throughput run beside its baseline's.
func tpRows(row func(metric, unit string, ours, base float64, target string) Row, n, size, r int, ours, base tpResult) []Row {
	target := ""
	if n == 100 && size == 32 && r == 1 {
		target = ">= 0.5x"
	}
	return []Row{
		row("delivered", "msgs/s", ours.Delivered, base.Delivered, target),
		row("delivered", "MB/s", ours.MBps, base.MBps, ""),
		row("sent", "msgs/s", ours.Sent, base.Sent, ""),
		row("latency p50 under load", "ms", ms(ours.Lat.P50), latOrNaN(base.Lat.P50, base), ""),
		row("latency p99 under load", "ms", ms(ours.Lat.P99), latOrNaN(base.Lat.P99, base), ""),
	}
}

func latOrNaN(d time.Duration, r tpResult) float64 {
	if math.IsNaN(r.Delivered) {
		return math.NaN()
	}
	return ms(d)
}

func latencyRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	n, size, r := cfg.LatClients, cfg.LatSize, cfg.LatRecipients
	for _, rate := range cfg.Rates {
		params := fmt.Sprintf("clients=%d rate=%d/s size=%dB recipients=%d %s %s %s", n, rate, size, r, durParam(cfg), targetParam(cfg), loadParam())
		fmt.Fprintf(stderr, "latency %s ...\n", params)
		t, err := chatTarget(cfg)
		if err != nil {
			return rows, err
		}
		ours, err := runLatency(ctx, newChatSystem(t.Addr, cfg.SrcAddrs, 4<<10, 4<<10), everyone(n, r), rate, size, cfg.Warmup, cfg.Duration, nil)
		t.Close()
		if err != nil {
			return rows, fmt.Errorf("chat: %w", err)
		}
		nan := math.NaN()
		theirs := latResult{Offered: nan, Achieved: nan, Delivered: nan, Lost: 0}
		baseName := ""
		var tl Summary
		if !cfg.NoBaseline {
			baseName = "nats-server"
			ns, err := newNATSSystem()
			if err != nil {
				return rows, err
			}
			theirs, err = runLatency(ctx, ns, everyone(n, r), rate, size, cfg.Warmup, cfg.Duration, nil)
			if err != nil {
				return rows, fmt.Errorf("nats: %w", err)
			}
			tl = theirs.Lat
		}
		b := func(d time.Duration) float64 {
			if baseName == "" {
				return nan
			}
			return ms(d)
		}
		row := func(metric, unit string, o, bv float64, target string) Row {
			return Row{Workload: Latency, Params: params, Baseline: baseName, Metric: metric, Unit: unit, Ours: o, Base: bv, Target: target}
		}
		p99Target := ""
		if n == 1000 && rate == 20000 {
			p99Target = "< 1"
		}
		rows = append(rows,
			row("sent", "msgs/s", ours.Achieved, theirs.Achieved, ""),
			row("delivered", "msgs/s", ours.Delivered, theirs.Delivered, ""),
			row("lost", "msgs", float64(ours.Lost), float64(theirs.Lost), ""),
			row("p50", "ms", ms(ours.Lat.P50), b(tl.P50), ""),
			row("p90", "ms", ms(ours.Lat.P90), b(tl.P90), ""),
			row("p99", "ms", ms(ours.Lat.P99), b(tl.P99), p99Target),
			row("p99.9", "ms", ms(ours.Lat.P999), b(tl.P999), ""),
			row("max", "ms", ms(ours.Lat.Max), b(tl.Max), ""),
			row("sender lag p99", "ms", ms(ours.Lag.P99), b(theirs.Lag.P99), ""),
		)
	}
	return rows, nil
}

func scaleRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	for _, n := range cfg.ScaleClients {
		params := fmt.Sprintf("clients=%d src-addrs=%d clients-per-worker=%d%s", n, cfg.SrcAddrs, cfg.ClientsPerWorker, joinRateParam(cfg))
		if cfg.ServerAddr != "" {
			params += " server=" + cfg.ServerAddr
		} else if cfg.ServerBin != "" {
			params += " server=" + cfg.ServerBin
		} else {
			params += " server=own-process"
		}
		params += " " + loadParam()
		fmt.Fprintf(stderr, "scale %s ...\n", params)
		t, err := ownTarget(ctx, cfg, n+16, stderr)
		if err != nil {
			return rows, err
		}
		res, err := runScale(ctx, cfg, []*target{t}, n, 0, stderr)
		t.Close()
		if err != nil {
			return rows, err
		}
		nan := math.NaN()
		row := func(metric, unit string, v float64, target string) Row {
			return Row{Workload: Scale, Params: params, Metric: metric, Unit: unit, Ours: v, Base: nan, Target: target}
		}
		rssOr := func(v int64) float64 {
			if t.PID == 0 {
				return nan
			}
			return float64(v)
		}
		rows = append(rows,
			row("joined clients", "clients", float64(n), ""),
			row("connect and join", "s", res.JoinSecs, ""),
			row("server RSS before clients", "MiB", rssOr(res.RSSBase[0])/(1<<20), ""),
			row("server RSS, all idle", "MiB", rssOr(res.RSSIdle[0])/(1<<20), ""),
			row("server RSS per idle client", "KiB", rssOr(res.RSSIdle[0]-res.RSSBase[0])/1024/float64(n), "<= 16"),
			row("round: one message from each", "s", res.Full.Secs, ""),
			row("round delivered", "msgs/s", float64(res.Full.Recv)/res.Full.Secs, ""),
			row("round latency p50", "ms", ms(res.Full.Lat.P50), ""),
			row("round latency p99", "ms", ms(res.Full.Lat.P99), ""),
			row("server RSS per client after round", "KiB", rssOr(res.RSSRound[0]-res.RSSBase[0])/1024/float64(n), ""),
		)
	}
	return rows, nil
}

func filesRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	r := cfg.FileRecipients
	for _, size := range cfg.FileSizes {
		for _, mode := range cfg.FileModes {
			if mode == ModeClients {
				rs, err := clientFilesRows(ctx, cfg, size, stderr)
				rows = append(rows, rs...)
				if err != nil {
					return rows, err
				}
				continue
			}
			params := fmt.Sprintf("size=%dB recipients=%d mode=%s chat-rate=%d/s", size, r, mode, cfg.ChatRate)
			if cfg.FileSlowRate > 0 {
				params += fmt.Sprintf(" slow-recipient=%dB/s", cfg.FileSlowRate)
			}
			switch {
			case cfg.ServerAddr != "":
				params += " server=" + cfg.ServerAddr
			case cfg.ServerBin != "":
				params += " server=" + cfg.ServerBin
			default:
				params += " server=own-process"
			}
			fmt.Fprintf(stderr, "files %s ...\n", params)
			t, err := ownTarget(ctx, cfg, max(r+16, 64), stderr)
			if err != nil {
				return rows, err
			}
			res, err := runFiles(ctx, t, t, size, r, cfg.ChatRate, cfg.FileSlowRate, mode, cfg.Timeout, nil)
			t.Close()
			if err != nil {
				return rows, err
			}
			nan := math.NaN()
			baseMBps, baseName := nan, ""
			if !cfg.NoBaseline {
				baseName = "tcp-copy"
				secs, err := tcpCopy(ctx, size, r, cfg.Timeout)
				if err != nil {
					return rows, err
				}
				baseMBps = float64(size) / secs / 1e6
			}
			row := func(metric, unit string, v, b float64, target string) Row {
				return Row{Workload: Files, Params: params, Baseline: baseName, Metric: metric, Unit: unit, Ours: v, Base: b, Target: target}
			}
			rss := func(v int64) float64 {
				if t.PID == 0 {
					return nan
				}
				return float64(v) / (1 << 20)
			}
			mbTarget, rssTarget, chatTarget := "", "", ""
			if size == 1<<30 && r == 1 {
				mbTarget, rssTarget, chatTarget = ">= 0.5x", "<= 32", "< 50"
			}
			rows = append(rows,
				row("transfer", "MB/s", res.MBps, baseMBps, mbTarget),
				row("transfer time", "s", res.Secs, float64(size)/baseMBps/1e6, ""),
				row("server RSS before", "MiB", rss(res.RSSBase), nan, ""),
				row("server RSS growth (peak)", "MiB", rss(res.RSSPeak-res.RSSBase), nan, rssTarget),
				row("chat msgs sent during transfer", "msgs", float64(res.ChatSent), nan, ""),
				row("chat latency p50", "ms", ms(res.Chat.P50), nan, ""),
				row("chat latency p99", "ms", ms(res.Chat.P99), nan, chatTarget),
				row("chat latency max", "ms", ms(res.Chat.Max), nan, ""),
				row("sender's message after the file (from its start)", "s", res.SenderNext, nan, ""),
			)
		}
	}
	return rows, nil
}

// clientFilesRows runs the clients file mode for a file of size bytes
// with each of cfg.ClientBins in turn, each beside its baseline (a synced
// file-to-file TCP copy).
func clientFilesRows(ctx context.Context, cfg Config, size int64, stderr io.Writer) ([]Row, error) {
	var rows []Row
	r := cfg.FileRecipients
	dir, err := os.MkdirTemp("", "chatbench-files-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "bench.bin")
	if err := writeSource(src, size); err != nil {
		return nil, err
	}
	for _, bin := range cfg.ClientBins {
		params := fmt.Sprintf("size=%dB recipients=%d mode=%s chat-rate=%d/s", size, r, ModeClients, cfg.ChatRate)
		switch {
		case cfg.ServerAddr != "":
			params += " server=" + cfg.ServerAddr
		case cfg.ServerBin != "":
			params += " server=" + cfg.ServerBin
		default:
			params += " server=own-process"
		}
		if bin == "" {
			params += " client=own-process"
		} else {
			params += " client=" + bin
		}
		params += " " + loadParam()
		fmt.Fprintf(stderr, "files %s ...\n", params)
		t, err := ownTarget(ctx, cfg, max(r+16, 64), stderr)
		if err != nil {
			return rows, err
		}
		res, err := runClientFiles(ctx, t, bin, src, dir, size, r, cfg.ChatRate, cfg.Timeout, stderr)
		t.Close()
		if err != nil {
			return rows, err
		}
		nan := math.NaN()
		baseSecs, baseName := nan, ""
		if !cfg.NoBaseline {
			baseName = "synced-copy"
			if baseSecs, err = syncedCopy(ctx, src, dir, r, cfg.Timeout); err != nil {
				return rows, err
			}
		}
		row := func(metric, unit string, v, b float64, target string) Row {
			return Row{Workload: Files, Params: params, Baseline: baseName, Metric: metric, Unit: unit, Ours: v, Base: b, Target: target}
		}
		mib := func(v int64, pid int) float64 {
			if pid == 0 {
				return nan
			}
			return float64(v) / (1 << 20)
		}
		mbTarget, chatTarget := "", ""
		if size == 1<<30 && r == 1 {
			mbTarget, chatTarget = ">= 0.9x", "< 50"
		}
		rows = append(rows,
			row("transfer, file to synced file", "MB/s", res.MBps, float64(size)/baseSecs/1e6, mbTarget),
			row("transfer time", "s", res.Secs, baseSecs, ""),
			row("server RSS growth (peak)", "MiB", mib(res.RSSPeak-res.RSSBase, t.PID), nan, ""),
			row("recipient client RSS before", "MiB", mib(res.ClientRSSBase, 1), nan, ""),
			row("recipient client RSS growth (peak)", "MiB", mib(res.ClientRSSPeak-res.ClientRSSBase, 1), nan, ""),
			row("chat msgs sent during transfer", "msgs", float64(res.ChatSent), nan, ""),
			row("chat msgs printed by the recipient", "msgs", float64(res.ChatRecv), nan, ""),
			row("chat latency p50 (to printed)", "ms", ms(res.Chat.P50), nan, ""),
			row("chat latency p99 (to printed)", "ms", ms(res.Chat.P99), nan, chatTarget),
			row("chat latency max (to printed)", "ms", ms(res.Chat.Max), nan, ""),
		)
	}
	return rows, nil
}
