package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/protocol"
)

// Startup is the workload that measures how soon a freshly started server
// takes connections (issue 19: a course harness connects 10 ms after it
// starts the server).
const Startup = "startup"

// startupPoll is the pause between two connection attempts while the
// server starts: fine enough to resolve a tenth of a millisecond, coarse
// enough that the prober leaves the starting server a CPU (the machine may
// have only two).
const startupPoll = 100 * time.Microsecond

// startupResult is one start of a server: how long from exec to the
// first connection that succeeded, and to the answer to a join and a
// request for the user list on it.
type startupResult struct {
	connect, join time.Duration
}

// startOnce starts bin with only -p (every other flag at its default, so
// it listens on localhost), on a free port, and measures it; then it ends
// the server.
func startOnce(ctx context.Context, bin string, timeout time.Duration) (startupResult, error) {
	var res startupResult
	ports, err := freePorts(1)
	if err != nil {
		return res, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	cmd := exec.Command(bin, "-p", strconv.Itoa(ports[0]))
	cmd.Stdout, cmd.Stderr = io.Discard, nil
	start := time.Now()
	exited, stop, err := startTerminable(cmd, 10*time.Second)
	if err != nil {
		return res, err
	}
	defer stop()
	deadline := start.Add(timeout)
	var nc net.Conn
	for {
		nc, err = net.DialTimeout("tcp", addr, time.Until(deadline))
		if err == nil {
			res.connect = time.Since(start)
			break
		}
		select {
		case <-exited:
			return res, fmt.Errorf("%s exited before it took a connection: %s", bin, cmd.ProcessState)
		case <-ctx.Done():
			return res, ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("%s took no connection within %v: %w", bin, timeout, err)
		}
		time.Sleep(startupPoll)
	}
	defer nc.Close()
	nc.SetDeadline(deadline)
	req := protocol.AppendJoin(nil, protocol.Join, "startup")
	req = protocol.AppendEmpty(req, protocol.RequestUsersList)
	if _, err := nc.Write(req); err != nil {
		return res, fmt.Errorf("join: %w", err)
	}
	r := protocol.NewReader(nc)
	h, err := r.ReadHeader()
	if err != nil {
		return res, fmt.Errorf("waiting for the user list: %w", err)
	}
	if h.Type != protocol.ResponseUsersList {
		return res, fmt.Errorf("the server answered the join with %s", h.Name)
	}
	res.join = time.Since(start)
	return res, nil
}

// The startup workload.

func startupFlags(fs *pflag.FlagSet, c *Config) {
	fs.IntVar(&c.Starts, "starts", c.Starts, "startup: starts of each binary")
	fs.StringVar(&c.BaselineBin, "baseline-bin", "", "startup: another server binary to start beside --server-bin, alternately (e.g. an older build)")
}

// startupRuns is the one run of the startup workload: cfg.ServerBin
// started cfg.Starts times and, with cfg.BaselineBin, that binary as many
// times; it reports the median and 90th percentile of each measure.
func startupRuns(cfg Config, stderr io.Writer) iter.Seq[job] {
	bins := []string{cfg.ServerBin}
	params := fmt.Sprintf("starts=%d server=%s", cfg.Starts, binParam(cfg.ServerBin))
	baseName := ""
	if cfg.BaselineBin != "" {
		bins = append(bins, cfg.BaselineBin)
		params += " baseline=" + binParam(cfg.BaselineBin)
		baseName = "baseline"
	}
	return func(yield func(job) bool) {
		yield(trial[[][]startupResult]{
			workload: Startup,
			params:   params + " " + loadParam(),
			baseName: baseName,
			ours: side[[][]startupResult]{measure: func(ctx context.Context, _ []*target) ([][]startupResult, error) {
				return startAlternately(ctx, bins, cfg.Starts, cfg.Timeout, stderr)
			}},
			rows: func(row rowFunc, results, _ [][]startupResult) []Row { return startupRows(row, bins, results) },
		})
	}
}

// startAlternately starts each of bins starts times, alternating them
// (each pair in the other order than the one before, so neither always
// runs on a machine the other just warmed or loaded), and returns the
// results of each.
func startAlternately(ctx context.Context, bins []string, starts int, timeout time.Duration, stderr io.Writer) ([][]startupResult, error) {
	for _, b := range bins {
		// One unmeasured start each: the first run of a binary pages it
		// into the page cache, which later starts find there.
		if _, err := startOnce(ctx, b, timeout); err != nil {
			return nil, err
		}
	}
	results := make([][]startupResult, len(bins))
	for i := range starts {
		fmt.Fprintf(stderr, "  start %d of %d ...\r", i+1, starts)
		for j := range bins {
			k := j
			if i%2 == 1 {
				k = len(bins) - 1 - j
			}
			r, err := startOnce(ctx, bins[k], timeout)
			if err != nil {
				return nil, err
			}
			results[k] = append(results[k], r)
		}
	}
	fmt.Fprintln(stderr)
	return results, nil
}

// startupRows are the rows of the starts of bins: ours (the first) beside
// the baseline, if there is one.
func startupRows(row rowFunc, bins []string, results [][]startupResult) []Row {
	quantiles := func(rs []startupResult, pick func(startupResult) time.Duration) (median, p90 float64) {
		v := make([]int64, len(rs))
		for i, r := range rs {
			v[i] = int64(pick(r))
		}
		slices.Sort(v)
		return ms(time.Duration(Percentile(v, 0.5))), ms(time.Duration(Percentile(v, 0.9)))
	}
	var rows []Row
	for _, m := range []struct {
		name   string
		pick   func(startupResult) time.Duration
		target string
	}{
		{"exec to connect", func(r startupResult) time.Duration { return r.connect }, "<= 10"},
		{"exec to joined", func(r startupResult) time.Duration { return r.join }, ""},
	} {
		med, p90 := quantiles(results[0], m.pick)
		baseMed, baseP90 := math.NaN(), math.NaN()
		if len(bins) > 1 {
			baseMed, baseP90 = quantiles(results[1], m.pick)
		}
		rows = append(rows,
			row(m.name+" median", "ms", med, baseMed, m.target),
			row(m.name+" p90", "ms", p90, baseP90, ""),
		)
	}
	size := func(b string) float64 {
		st, err := os.Stat(b)
		if err != nil {
			return math.NaN()
		}
		return float64(st.Size()) / (1 << 20)
	}
	base := math.NaN()
	if len(bins) > 1 {
		base = size(bins[1])
	}
	return append(rows, row("binary size", "MiB", size(bins[0]), base, ""))
}

// binParam names a binary in a run's parameters: its file name.
func binParam(path string) string { return filepath.Base(path) }

// checkStartup checks what the startup workload needs.
func (c *Config) checkStartup() error {
	if !slices.Contains(c.Workloads, Startup) {
		if c.BaselineBin != "" {
			return errors.New("--baseline-bin is for the startup workload")
		}
		return nil
	}
	switch {
	case c.ServerBin == "":
		return errors.New("startup needs --server-bin: the server binary to start (e.g. go build -o /tmp/gochatd ./cmd/gochatd)")
	case c.ServerAddr != "" || c.Cluster > 0:
		return errors.New("startup starts its own servers: it excludes --server-addr and --cluster")
	case c.Starts < 1 || c.Starts > 10000:
		return fmt.Errorf("--starts %d out of range [1, 10000]", c.Starts)
	}
	return nil
}
