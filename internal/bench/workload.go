package bench

import (
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// A workload is one of the tool's workloads: its name, the flags only it
// reads, and the runs it makes of a configuration, each one table of
// figures. What the runs share (the progress line, the servers a run
// needs, ours measured beside a baseline, the rows) is in trial; a
// workload says only what is its own (issue 24 item 9: before, each
// workload was a function of 50-200 lines that did all of it again).
type workload struct {
	name string
	// flags, if not nil, adds the workload's own flags, which set c.
	flags func(fs *pflag.FlagSet, c *Config)
	// runs yields the runs of cfg in order; with --cluster, clusterRuns
	// does instead, when it is not nil. Each run is made just before it
	// starts, so that its parameters show the load at its start.
	runs, clusterRuns func(cfg Config, stderr io.Writer) iter.Seq[job]
}

// workloads are the tool's workloads, in the order of Workloads
// (TestWorkloadsRegistered checks that the two agree). A new workload is
// a name in Workloads and -h's Usage, an entry here, and a runs function
// that yields a trial per table: its sides' servers (one, or a cluster
// by spawned), what they measure, and its rows (see throughputRuns, or
// clusterTrial for a cluster beside one node).
var workloads = []workload{
	{name: Throughput, flags: throughputFlags, runs: throughputRuns, clusterRuns: clusterThroughputRuns},
	{name: Latency, flags: latencyFlags, runs: latencyRuns, clusterRuns: clusterLatencyRuns},
	{name: Scale, flags: scaleFlags, runs: scaleRuns, clusterRuns: clusterScaleRuns},
	{name: Files, flags: filesFlags, runs: filesRuns, clusterRuns: clusterFilesRuns},
	{name: Web, runs: webRuns},
	{name: Startup, flags: startupFlags, runs: startupRuns},
	{name: Storm, flags: stormFlags, runs: stormRuns},
	{name: Failover, flags: failoverFlags, runs: failoverRuns},
}

// workloadNamed returns the workload called name.
func workloadNamed(name string) (workload, bool) {
	for _, w := range workloads {
		if w.name == name {
			return w, true
		}
	}
	return workload{}, false
}

// job is one run of a workload: it measures, and returns the rows of one
// table.
type job interface {
	do(ctx context.Context, stderr io.Writer) ([]Row, error)
}

// jobFunc is a job that is one function, for a run that manages its
// servers itself (failoverRuns).
type jobFunc func(ctx context.Context, stderr io.Writer) ([]Row, error)

func (f jobFunc) do(ctx context.Context, stderr io.Writer) ([]Row, error) { return f(ctx, stderr) }

// failed is a job that only fails: what a workload yields when it cannot
// make its next run.
type failed struct{ err error }

func (f failed) do(context.Context, io.Writer) ([]Row, error) { return nil, f.err }

// trial is the common shape of a run: ours measured, then (or, with
// baseFirst, before) a baseline, each on servers set up for it alone and
// torn down as soon as it is measured, and both reported in one table.
type trial[T any] struct {
	workload string // Row.Workload
	title    string // names the run in its progress line; "" is the workload
	params   string // Row.Params: the run's parameters
	system   string // Row.System: what ours is; "" is one chat server
	baseName string // Row.Baseline; "" when there is none (--no-baseline)

	ours side[T]
	base *side[T] // nil: none, or ours measures it too (web)
	// baseFirst measures the baseline before ours: the single node of a
	// --cluster run before the cluster.
	baseFirst bool
	// partial reports ours even when measuring it failed: its rows show
	// what went wrong (a storm whose joins were refused).
	partial bool

	// rows reports ours beside base, which is T's zero value when base
	// is nil.
	rows func(row rowFunc, ours, base T) []Row
}

// side is one of a trial's systems: where it runs and how it is measured.
type side[T any] struct {
	label    string  // prefixes the errors of measure; "" for none
	announce string  // a progress line printed before it; "" for none
	servers  servers // nil: it needs none, or starts its own
	measure  func(ctx context.Context, nodes []*target) (T, error)
}

func (t trial[T]) do(ctx context.Context, stderr io.Writer) ([]Row, error) {
	title := t.title
	if title == "" {
		title = t.workload
	}
	fmt.Fprintf(stderr, "%s %s ...\n", title, t.params)
	var base T
	measureBase := func() error {
		if t.base == nil {
			return nil
		}
		var err error
		base, _, err = t.base.run(ctx, stderr)
		return err
	}
	if t.baseFirst {
		if err := measureBase(); err != nil {
			return nil, err
		}
	}
	ours, measured, err := t.ours.run(ctx, stderr)
	if err == nil && !t.baseFirst {
		err = measureBase()
	}
	if err != nil && !(t.partial && measured) {
		return nil, err
	}
	return t.rows(tableRow(t.workload, t.params, t.system, t.baseName), ours, base), err
}

// run sets up the side's servers, measures it and tears them down. It
// reports whether it got as far as measuring.
func (s side[T]) run(ctx context.Context, stderr io.Writer) (v T, measured bool, err error) {
	if s.announce != "" {
		fmt.Fprintln(stderr, s.announce)
	}
	var nodes []*target
	if s.servers != nil {
		var stop func()
		if nodes, stop, err = s.servers(ctx, stderr); err != nil {
			return v, false, err
		}
		defer stop()
	}
	v, err = s.measure(ctx, nodes)
	if err != nil && s.label != "" {
		err = fmt.Errorf("%s: %w", s.label, err)
	}
	return v, true, err
}

// jobs yields f of each of cases.
func jobs[C any](cases iter.Seq[C], f func(C) job) iter.Seq[job] {
	return func(yield func(job) bool) {
		for c := range cases {
			if !yield(f(c)) {
				return
			}
		}
	}
}

// rowFunc makes one row of a table: a metric, its unit, ours and the
// baseline's figure, and the target for it, if any.
type rowFunc func(metric, unit string, ours, base float64, target string) Row

// tableRow returns the rowFunc of one table. Without a baseline (baseline
// ""), every row's Base is NaN.
func tableRow(workload, params, system, baseline string) rowFunc {
	return func(metric, unit string, ours, base float64, target string) Row {
		if baseline == "" {
			base = math.NaN()
		}
		return Row{Workload: workload, Params: params, System: system, Baseline: baseline, Metric: metric, Unit: unit, Ours: ours, Base: base, Target: target}
	}
}

// servers starts the servers a side runs against and returns them, with
// the function that stops them.
type servers func(ctx context.Context, stderr io.Writer) (nodes []*target, stop func(), err error)

// one returns the servers of a single target that start starts.
func one(start func(ctx context.Context, stderr io.Writer) (*target, error)) servers {
	return func(ctx context.Context, stderr io.Writer) ([]*target, func(), error) {
		t, err := start(ctx, stderr)
		if err != nil {
			return nil, nil, err
		}
		return []*target{t}, t.Close, nil
	}
}

// external returns the server of --server-addr.
func external(cfg Config) *target { return &target{Addr: cfg.ServerAddr, PID: cfg.ServerPID} }

// inProcessServer is the server of the throughput and latency workloads:
// the external one, or one in this process.
func inProcessServer(cfg Config) servers {
	return one(func(context.Context, io.Writer) (*target, error) {
		if cfg.ServerAddr != "" {
			return external(cfg), nil
		}
		return inProcess(1<<20, cfg.Limits)
	})
}

// ownServer is the server of the scale and files workloads: the external
// one, or one spawned in its own process.
func ownServer(cfg Config, maxClients int) servers {
	return one(func(ctx context.Context, stderr io.Writer) (*target, error) {
		if cfg.ServerAddr != "" {
			return external(cfg), nil
		}
		return spawnServer(ctx, cfg.ServerBin, maxClients, stderr)
	})
}

// spawned is one server spawned in its own process (k is 1) or a cluster
// of k nodes, each with a cap of maxClients.
func spawned(cfg Config, k, maxClients int) servers {
	if k == 1 {
		return one(func(ctx context.Context, stderr io.Writer) (*target, error) {
			return spawnServer(ctx, cfg.ServerBin, maxClients, stderr)
		})
	}
	return func(ctx context.Context, stderr io.Writer) ([]*target, func(), error) {
		c, err := spawnCluster(ctx, cfg.ServerBin, k, maxClients, cfg.Timeout, stderr)
		if err != nil {
			return nil, nil, err
		}
		return c.Nodes, c.Close, nil
	}
}

// The parameters that several workloads show.

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

// targetParam names the server of inProcessServer.
func targetParam(cfg Config) string {
	if cfg.ServerAddr != "" {
		return "server=" + cfg.ServerAddr
	}
	if cfg.Limits {
		return "server=in-process limits=default"
	}
	return "server=in-process"
}

// ownParam names the server of ownServer, or a spawned one.
func ownParam(cfg Config) string {
	switch {
	case cfg.ServerAddr != "":
		return "server=" + cfg.ServerAddr
	case cfg.ServerBin != "":
		return "server=" + cfg.ServerBin
	}
	return "server=own-process"
}
