package bench

import (
	"fmt"
	"math"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/protocol"
)

// The scale workload's idle phase (issue 22, the heartbeat's cost): with
// --scale-idle the clients, once joined and weighed, stay idle that long
// while the servers' CPU time is measured; with --scale-heartbeat they
// ask for the heartbeat extension and answer the server's pings (every
// half of its --heartbeat-timeout for a client that says nothing), so
// that an A/B against a server without it (or clients without it) shows
// what a heartbeat costs 10,000 idle users.

func scaleIdleFlags(fs *pflag.FlagSet, c *Config) {
	fs.BoolVar(&c.ScaleHeartbeat, "scale-heartbeat", false, "scale: the clients ask for the heartbeat extension and answer the server's pings")
	fs.DurationVar(&c.ScaleIdle, "scale-idle", 0, "scale: hold the idle clients this long once weighed, and report the server's CPU time meanwhile (0: not)")
}

// features returns the extensions a worker's clients ask for.
func (w workerSpec) features() []string {
	if w.Heartbeat {
		return []string{protocol.FeatureHeartbeat}
	}
	return nil
}

// idleParam names the idle phase's settings in a run's parameters.
func idleParam(cfg Config) string {
	s := ""
	if cfg.ScaleHeartbeat {
		s += " heartbeat"
	}
	if cfg.ScaleIdle > 0 {
		s += fmt.Sprintf(" idle=%v", cfg.ScaleIdle)
	}
	return s
}

// holdIdle holds the clients idle for cfg.ScaleIdle, if set, and returns
// the CPU time the servers (those in processes of their own) used per
// second meanwhile, NaN if not measured; it weighs them at its end into
// rss.
func holdIdle(cfg Config, nodes []*target, rss []int64) (float64, error) {
	if cfg.ScaleIdle <= 0 {
		return math.NaN(), weigh(nodes, rss)
	}
	var m cpuMeter
	for _, t := range nodes {
		if t.PID != 0 {
			m = append(m, t.PID)
		}
	}
	start, t0 := m.seconds(), time.Now()
	time.Sleep(cfg.ScaleIdle)
	used := m.seconds() - start
	if err := weigh(nodes, rss); err != nil {
		return math.NaN(), err
	}
	return used / time.Since(t0).Seconds(), nil
}
