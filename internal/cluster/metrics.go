package cluster

import "github.com/prometheus/client_golang/prometheus"

// metrics are the node's Prometheus collectors, with a series per peer
// node where it matters.
type metrics struct {
	framesOut  *prometheus.CounterVec // frames relayed to a peer node
	framesIn   *prometheus.CounterVec // frames relayed from a peer node
	gaps       *prometheus.CounterVec // batches from a peer node that never came
	dropped    *prometheus.CounterVec // frames for a peer node dropped unsent
	originated *prometheus.CounterVec // frames a peer node reported it originated for its users' sessions granted resume (originated.go)
	reconnects prometheus.Counter
	silences   prometheus.Counter
	fences     prometheus.Counter
	kvLatency  prometheus.Histogram
}

func newMetrics() *metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"peer"})
	}
	return &metrics{
		framesOut:  vec("chat_cluster_frames_out_total", "Frames relayed to users on a peer node."),
		framesIn:   vec("chat_cluster_frames_in_total", "Frames relayed from a peer node to users here."),
		gaps:       vec("chat_cluster_gaps_total", "Batches of frames from a peer node that never came (lost to a fault)."),
		dropped:    vec("chat_cluster_dropped_total", "Frames for a peer node dropped unsent (its queue was full or the engine refused them)."),
		originated: vec("chat_cluster_originated_reported_total", "Frames a peer node reported it originated for its users' sessions granted resume (counted missed if it dies before delivering them)."),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_engine_reconnects_total", Help: "Times the connection to the engine (NATS) came back after it was lost.",
		}),
		silences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_node_silences_total", Help: "Times a peer node went silent (no heartbeat) and its users were hidden.",
		}),
		fences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_cluster_fences_total", Help: "Times this node was cut off from the cluster and cut its users off.",
		}),
		kvLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "chat_cluster_join_seconds",
			Help:    "Time a join takes in the registry (claiming a place and a name).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}),
	}
}

// peer makes the per-peer series of node exist, at zero, once it is
// first heard, so that a dashboard sees them before anything happens.
func (m *metrics) peer(node string) {
	for _, v := range []*prometheus.CounterVec{m.framesOut, m.framesIn, m.gaps, m.dropped, m.originated} {
		v.WithLabelValues(node)
	}
}

// forget removes the per-peer series of node, whose lease is gone.
func (m *metrics) forget(node string) {
	for _, v := range []*prometheus.CounterVec{m.framesOut, m.framesIn, m.gaps, m.dropped, m.originated} {
		v.DeleteLabelValues(node)
	}
}

// Register adds the node's metrics to reg.
func (n *Node) Register(reg prometheus.Registerer) error {
	m := n.m
	retained := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chat_cluster_retained_bytes",
		Help: "Bytes of frames this node keeps for remote users' sessions granted resume, for a resume after their node dies (docs/SESSIONS.md).",
	}, func() float64 { return float64(n.hub.relay.retBytes.Load()) })
	for _, c := range []prometheus.Collector{m.framesOut, m.framesIn, m.gaps, m.dropped, m.originated, m.reconnects, m.silences, m.fences, m.kvLatency, retained} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
