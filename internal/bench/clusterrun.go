package bench

import (
	"context"
	"fmt"
)

// The workloads with --cluster: each runs against one server spawned from
// the cluster's binary (the baseline, "single-node") and then against a
// cluster of cfg.Cluster nodes, each started afresh; Ours is the cluster.

const (
	clusterSystem  = "cluster"
	singleBaseline = "single-node"
)

// clusterTrial returns the run of measure against one spawned server
// (unless cfg.NoBaseline) and then against a spawned cluster, both with a
// cap of maxClients, reported by rows. measure gets the servers: the one
// server, or the cluster's nodes, n1 first.
func clusterTrial[T any](cfg Config, workload, params string, maxClients int, measure func(ctx context.Context, nodes []*target) (T, error), rows func(row rowFunc, ours, single T) []Row) trial[T] {
	t := trial[T]{
		workload: workload, params: params, system: clusterSystem, baseFirst: true,
		ours: side[T]{label: "cluster", announce: fmt.Sprintf("  cluster of %d ...", cfg.Cluster), servers: spawned(cfg, cfg.Cluster, maxClients), measure: measure},
		rows: rows,
	}
	if !cfg.NoBaseline {
		t.baseName, t.base = singleBaseline, &side[T]{label: "single node", announce: "  one node ...", servers: spawned(cfg, 1, maxClients), measure: measure}
	}
	return t
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

// cpuRows returns the rows of the servers' CPU, from the cores they used
// and the messages delivered per second: the cores, and the CPU per
// message in microseconds.
func cpuRows(row rowFunc, ours, single, oursRate, singleRate float64) []Row {
	return []Row{
		row("server CPU (all nodes)", "cores", ours, single, ""),
		row("server CPU per message", "us", ours/oursRate*1e6, single/singleRate*1e6, ""),
	}
}
