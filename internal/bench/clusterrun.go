package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
)

// The workloads with --cluster: each runs against one server spawned from
// the cluster's binary (the baseline, "single-node") and then against a
// cluster of cfg.Cluster nodes, each started afresh; Ours is the cluster.

const (
	clusterSystem  = "cluster"
	singleBaseline = "single-node"
)

// vsSingle runs a workload against one spawned server (unless
// cfg.NoBaseline) and then against a spawned cluster, both with a cap of
// maxClients, and returns both results. run gets the servers: the one
// server, or the cluster's nodes, n1 first.
func vsSingle[T any](ctx context.Context, cfg Config, maxClients int, stderr io.Writer, run func(nodes []*target) (T, error)) (single, clustered T, err error) {
	if !cfg.NoBaseline {
		fmt.Fprintln(stderr, "  one node ...")
		t, err := spawnServer(ctx, cfg.ServerBin, maxClients, stderr)
		if err != nil {
			return single, clustered, err
		}
		single, err = run([]*target{t})
		t.Close()
		if err != nil {
			return single, clustered, fmt.Errorf("single node: %w", err)
		}
	}
	fmt.Fprintf(stderr, "  cluster of %d ...\n", cfg.Cluster)
	c, err := spawnCluster(ctx, cfg.ServerBin, cfg.Cluster, maxClients, cfg.Timeout, stderr)
	if err != nil {
		return single, clustered, err
	}
	clustered, err = run(c.Nodes)
	c.Close()
	if err != nil {
		return single, clustered, fmt.Errorf("cluster: %w", err)
	}
	return single, clustered, nil
}

// second returns the node recipients join: n2, or the one server.
func second(nodes []*target) *target { return nodes[min(1, len(nodes)-1)] }

// clusterParams describes the servers of a --cluster run, with the load.
func clusterParams(cfg Config) string {
	bin := cfg.ServerBin
	if bin == "" {
		bin = "own-process"
	}
	return fmt.Sprintf("cluster=%d server=%s %s", cfg.Cluster, bin, loadParam())
}

// clusterRow returns a row maker for one cluster run: Ours the cluster,
// Base the single node (NaN, and no baseline, with --no-baseline).
func clusterRow(cfg Config, workload, params string) func(metric, unit string, ours, single float64, target string) Row {
	baseName := singleBaseline
	if cfg.NoBaseline {
		baseName = ""
	}
	return func(metric, unit string, ours, single float64, target string) Row {
		if cfg.NoBaseline {
			single = math.NaN()
		}
		return Row{Workload: workload, Params: params, System: clusterSystem, Baseline: baseName, Metric: metric, Unit: unit, Ours: ours, Base: single, Target: target}
	}
}

func clusterThroughputRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	for _, n := range cfg.Clients {
		for _, size := range cfg.Sizes {
			for _, r := range cfg.Recipients {
				tr, err := halves(n, r)
				if err != nil {
					return rows, err
				}
				params := fmt.Sprintf("clients=%d senders=%d@n1 recipients=%d@n2 size=%dB per-message=%d %s %s", n, tr.senders, n-tr.senders, size, r, durParam(cfg), clusterParams(cfg))
				fmt.Fprintf(stderr, "throughput %s ...\n", params)
				single, ours, err := vsSingle(ctx, cfg, n+16, stderr, func(nodes []*target) (tpResult, error) {
					sys := splitSystem(nodes[0].Addr, second(nodes).Addr, tr, cfg.SrcAddrs, 64<<10, 32<<10)
					return runThroughput(ctx, sys, tr, size, cfg.Warmup, cfg.Duration, pidsOf(nodes))
				})
				if err != nil {
					return rows, err
				}
				row := clusterRow(cfg, Throughput, params)
				rows = append(rows, tpRows(row, n, size, r, ours, single)...)
				rows = append(rows, cpuRows(row, ours.ServerCPU, single.ServerCPU, ours.Delivered, single.Delivered)...)
			}
		}
	}
	return rows, nil
}

func clusterLatencyRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	n, size, r := cfg.LatClients, cfg.LatSize, cfg.LatRecipients
	tr, err := halves(n, r)
	if err != nil {
		return rows, err
	}
	for _, rate := range cfg.Rates {
		params := fmt.Sprintf("clients=%d senders=%d@n1 recipients=%d@n2 rate=%d/s size=%dB per-message=%d %s %s", n, tr.senders, n-tr.senders, rate, size, r, durParam(cfg), clusterParams(cfg))
		fmt.Fprintf(stderr, "latency %s ...\n", params)
		single, ours, err := vsSingle(ctx, cfg, n+16, stderr, func(nodes []*target) (latResult, error) {
			sys := splitSystem(nodes[0].Addr, second(nodes).Addr, tr, cfg.SrcAddrs, 4<<10, 4<<10)
			return runLatency(ctx, sys, tr, rate, size, cfg.Warmup, cfg.Duration, pidsOf(nodes))
		})
		if err != nil {
			return rows, err
		}
		row := clusterRow(cfg, Latency, params)
		p99Target := ""
		if rate == 20000 {
			p99Target = "<= 2x"
		}
		o, s := ours.Lat, single.Lat
		rows = append(rows,
			row("sent", "msgs/s", ours.Achieved, single.Achieved, ""),
			row("delivered", "msgs/s", ours.Delivered, single.Delivered, ""),
			row("lost", "msgs", float64(ours.Lost), float64(single.Lost), ""),
			row("p50", "ms", ms(o.P50), ms(s.P50), ""),
			row("p90", "ms", ms(o.P90), ms(s.P90), ""),
			row("p99", "ms", ms(o.P99), ms(s.P99), p99Target),
			row("p99.9", "ms", ms(o.P999), ms(s.P999), ""),
			row("max", "ms", ms(o.Max), ms(s.Max), ""),
			row("sender lag p99", "ms", ms(ours.Lag.P99), ms(single.Lag.P99), ""),
		)
		rows = append(rows, cpuRows(row, ours.ServerCPU, single.ServerCPU, ours.Delivered, single.Delivered)...)
	}
	return rows, nil
}

func clusterScaleRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	k := cfg.Cluster
	for _, n := range cfg.ScaleClients {
		share := clientsOn(0, k, n) // the single node's clients: one node's share
		params := fmt.Sprintf("clients=%d (single node: %d) src-addrs=%d clients-per-worker=%d%s %s", n, share, cfg.SrcAddrs, cfg.ClientsPerWorker, joinRateParam(cfg), clusterParams(cfg))
		fmt.Fprintf(stderr, "scale %s ...\n", params)
		single, ours, err := vsSingle(ctx, cfg, n+k+16, stderr, func(nodes []*target) (scaleResult, error) {
			if len(nodes) == 1 {
				return runScale(ctx, cfg, nodes, share, min(cfg.RoundSample, share), stderr)
			}
			return runScale(ctx, cfg, nodes, n, cfg.RoundSample, stderr)
		})
		if err != nil {
			return rows, err
		}
		row := clusterRow(cfg, Scale, params)
		largest := func(v []int64) float64 {
			if len(v) == 0 {
				return math.NaN()
			}
			return float64(maxOf(v)) / (1 << 20)
		}
		sum := func(v []int64) float64 {
			var t int64
			for _, x := range v {
				t += x
			}
			return float64(t) / (1 << 20)
		}
		perIdle := func(r scaleResult) float64 { return perClientKiB(r.RSSBase, r.RSSIdle, r.Clients) }
		perAfter := func(r scaleResult) float64 { return perClientKiB(r.RSSBase, r.RSSRound, r.Clients) }
		sampled := strconv.Itoa(ours.Sampled.Senders)
		rows = append(rows,
			row("joined clients", "clients", float64(ours.Clients), float64(single.Clients), ""),
			row("clients on the fullest node", "clients", float64(clientsOn(0, k, n)), float64(single.Clients), ""),
			row("connect and join, listed on every node", "s", ours.JoinSecs, single.JoinSecs, ""),
			row("server RSS before clients (largest node)", "MiB", largest(ours.RSSBase), largest(single.RSSBase), ""),
			row("server RSS, all idle (largest node)", "MiB", largest(ours.RSSIdle), largest(single.RSSIdle), ""),
			row("server RSS, all idle (all nodes)", "MiB", sum(ours.RSSIdle), sum(single.RSSIdle), ""),
			row("server RSS per idle client (largest)", "KiB", perIdle(ours), perIdle(single), "<= 16"),
			row("sampled round: messages sent", "msgs", float64(ours.Sampled.Senders), float64(single.Sampled.Senders), ""),
			row("sampled round: delivered", "msgs", float64(ours.Sampled.Recv), float64(single.Sampled.Recv), "all "+sampled),
			row("sampled round: time", "s", ours.Sampled.Secs, single.Sampled.Secs, ""),
			row("sampled round: latency p50", "ms", ms(ours.Sampled.Lat.P50), ms(single.Sampled.Lat.P50), ""),
			row("sampled round: latency p99", "ms", ms(ours.Sampled.Lat.P99), ms(single.Sampled.Lat.P99), ""),
			row("round: one message from each", "s", ours.Full.Secs, single.Full.Secs, ""),
			row("round delivered", "msgs/s", float64(ours.Full.Recv)/ours.Full.Secs, float64(single.Full.Recv)/single.Full.Secs, ""),
			row("round latency p50", "ms", ms(ours.Full.Lat.P50), ms(single.Full.Lat.P50), ""),
			row("round latency p99", "ms", ms(ours.Full.Lat.P99), ms(single.Full.Lat.P99), ""),
			row("server RSS per client after rounds (largest)", "KiB", perAfter(ours), perAfter(single), ""),
		)
	}
	return rows, nil
}

// cpuRows returns the rows of the servers' CPU, from the cores they used
// and the messages delivered per second: the cores, and the CPU per
// message in microseconds.
func cpuRows(row func(metric, unit string, ours, single float64, target string) Row, ours, single, oursRate, singleRate float64) []Row {
	return []Row{
		row("server CPU (all nodes)", "cores", ours, single, ""),
		row("server CPU per message", "us", ours/oursRate*1e6, single/singleRate*1e6, ""),
	}
}

func maxOf(v []int64) int64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

func clusterFilesRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	r := cfg.FileRecipients
	for _, size := range cfg.FileSizes {
		for _, mode := range cfg.FileModes {
			if mode == ModeClients {
				continue // it measures the client, the same against any server
			}
			params := fmt.Sprintf("size=%dB sender@n1 recipients=%d@n2 mode=%s chat-rate=%d/s %s", size, r, mode, cfg.ChatRate, clusterParams(cfg))
			fmt.Fprintf(stderr, "files %s ...\n", params)
			single, ours, err := vsSingle(ctx, cfg, max(r+16, 64), stderr, func(nodes []*target) (filesResult, error) {
				return runFiles(ctx, nodes[0], second(nodes), size, r, cfg.ChatRate, cfg.FileSlowRate, mode, cfg.Timeout, pidsOf(nodes))
			})
			if err != nil {
				return rows, err
			}
			row := clusterRow(cfg, Files, params)
			mib := func(v int64) float64 { return float64(v) / (1 << 20) }
			target := ""
			if size == 1<<30 && r == 1 {
				target = ">= 0.5x"
			}
			rows = append(rows,
				row("transfer", "MB/s", ours.MBps, single.MBps, target),
				row("transfer time", "s", ours.Secs, single.Secs, ""),
				row("server CPU per GB (all nodes)", "s", ours.ServerCPU/(float64(size)/1e9), single.ServerCPU/(float64(size)/1e9), ""),
				row("server RSS before (sender's node)", "MiB", mib(ours.RSSBase), mib(single.RSSBase), ""),
				row("RSS growth, peak (sender's node)", "MiB", mib(ours.RSSPeak-ours.RSSBase), mib(single.RSSPeak-single.RSSBase), ""),
				row("RSS growth, peak (recipients' node)", "MiB", mib(ours.RecvRSSPeak-ours.RecvRSSBase), mib(single.RecvRSSPeak-single.RecvRSSBase), ""),
				row("chat msgs sent during transfer", "msgs", float64(ours.ChatSent), float64(single.ChatSent), ""),
				row("chat latency p50", "ms", ms(ours.Chat.P50), ms(single.Chat.P50), ""),
				row("chat latency p99", "ms", ms(ours.Chat.P99), ms(single.Chat.P99), ""),
				row("chat latency max", "ms", ms(ours.Chat.Max), ms(single.Chat.Max), ""),
			)
		}
	}
	return rows, nil
}
