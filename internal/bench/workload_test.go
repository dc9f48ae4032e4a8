package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/testbin"
)

func TestWorkloadsRegistered(t *testing.T) {
	var names []string
	for _, w := range workloads {
		names = append(names, w.name)
		if w.runs == nil {
			t.Errorf("%s: no runs", w.name)
		}
	}
	if !slices.Equal(names, Workloads) {
		t.Fatalf("registered %v, want %v", names, Workloads)
	}
	for _, name := range Workloads {
		if !strings.Contains(Usage, "  "+name+"  ") {
			t.Errorf("-h does not describe %s", name)
		}
	}
}

// TestTrial checks the order in which a trial measures its sides and
// tears down their servers, and what it reports when one fails.
func TestTrial(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name      string
		baseFirst bool
		noBase    bool
		partial   bool
		failSetUp string // the side whose servers fail to start
		fail      string // the side whose measure fails
		wantLog   string
		wantErr   string // "" for none
		wantRows  bool
	}{
		{name: "ours then base", wantLog: "up ours,ours,down ours,up base,base,down base", wantRows: true},
		{name: "base first", baseFirst: true, wantLog: "up base,base,down base,up ours,ours,down ours", wantRows: true},
		{name: "no baseline", noBase: true, wantLog: "up ours,ours,down ours", wantRows: true},
		{name: "ours fails", fail: "ours", wantLog: "up ours,ours,down ours", wantErr: "chat: boom"},
		{name: "base fails", fail: "base", wantLog: "up ours,ours,down ours,up base,base,down base", wantErr: "nats: boom"},
		{name: "base first fails", baseFirst: true, fail: "base", wantLog: "up base,base,down base", wantErr: "nats: boom"},
		{name: "partial keeps the rows", partial: true, noBase: true, fail: "ours", wantLog: "up ours,ours,down ours", wantErr: "chat: boom", wantRows: true},
		{name: "set-up error is not labelled", partial: true, failSetUp: "ours", wantLog: "up ours", wantErr: "boom"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log []string
			mkSide := func(name string, v float64) *side[float64] {
				return &side[float64]{
					label: map[string]string{"ours": "chat", "base": "nats"}[name],
					servers: func(context.Context, io.Writer) ([]*target, func(), error) {
						log = append(log, "up "+name)
						if c.failSetUp == name {
							return nil, nil, boom
						}
						return []*target{{Addr: name}}, func() { log = append(log, "down "+name) }, nil
					},
					measure: func(_ context.Context, nodes []*target) (float64, error) {
						log = append(log, nodes[0].Addr)
						if c.fail == name {
							return v, boom
						}
						return v, nil
					},
				}
			}
			tr := trial[float64]{workload: Throughput, params: "p", baseName: "nats-server", ours: *mkSide("ours", 3), baseFirst: c.baseFirst, partial: c.partial,
				rows: func(row rowFunc, ours, base float64) []Row { return []Row{row("m", "u", ours, base, "")} }}
			if !c.noBase {
				tr.base = mkSide("base", 2)
			} else {
				tr.baseName = ""
			}
			var progress bytes.Buffer
			rows, err := tr.do(context.Background(), &progress)
			if got := strings.Join(log, ","); got != c.wantLog {
				t.Errorf("order %q, want %q", got, c.wantLog)
			}
			if (err == nil) != (c.wantErr == "") || err != nil && err.Error() != c.wantErr {
				t.Errorf("error %v, want %q", err, c.wantErr)
			}
			if (len(rows) > 0) != c.wantRows {
				t.Fatalf("rows %+v, want some: %v", rows, c.wantRows)
			}
			if progress.String() != "throughput p ...\n" {
				t.Errorf("progress %q", progress.String())
			}
			if !c.wantRows {
				return
			}
			r := rows[0]
			if r.Workload != Throughput || r.Params != "p" || r.Ours != 3 || c.noBase != !r.HasBase() || r.HasBase() && r.Base != 2 {
				t.Errorf("row %+v", r)
			}
		})
	}
}

// TestEveryWorkload runs each workload through Run, as the tool does, at
// toy sizes: the in-process server for throughput and latency, a built
// cmd/gochatd for the workloads that spawn or start a server, and this
// test binary (see TestMain) as the workers and the clients.
func TestEveryWorkload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gochatd and starts servers and processes")
	}
	gochatd := filepath.Join(t.TempDir(), "gochatd")
	if err := testbin.BuildRace(gochatd, "github.com/gochat/chat/cmd/gochatd", false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Workloads = Workloads
	cfg.ServerBin = gochatd
	cfg.Duration, cfg.Warmup, cfg.Timeout = 200*time.Millisecond, 50*time.Millisecond, time.Minute
	cfg.Clients, cfg.Sizes, cfg.Recipients = []int{4}, []int{40}, []int{2}
	cfg.LatClients, cfg.Rates = 6, []int{500}
	cfg.ScaleClients, cfg.ClientsPerWorker, cfg.SrcAddrs = []int{20}, 8, 2
	cfg.FileSizes, cfg.FileRecipients, cfg.ChatRate = []int64{1<<20 + 7}, 2, 200
	cfg.Starts = 2
	cfg.StormJoins, cfg.StormDials = []int{20}, 8
	// Each workload's figures that show it ran: a count, or a rate.
	want := map[string][]string{
		Throughput: {"delivered msgs/s"},
		Latency:    {"delivered msgs/s"},
		Scale:      {"joined clients clients", "round delivered msgs/s"},
		Files:      {"transfer MB/s", "transfer, file to synced file MB/s"},
		Web:        {"delivered, WebSocket clients msgs/s", "server RSS per idle client KiB"},
		Startup:    {"exec to connect median ms"},
		Storm:      {"admitted joins", "again: admitted joins"},
	}
	seen := map[string]int{}
	for _, r := range runCSV(t, ctx, cfg) {
		w, metric, unit, ours, base := r[0], r[2], r[3], r[4], r[6]
		if !slices.Contains(want[w], metric+" "+unit) {
			continue
		}
		seen[w]++
		if v, err := strconv.ParseFloat(ours, 64); err != nil || v <= 0 {
			t.Errorf("%s %s: ours %q", w, metric, ours)
		}
		if (w == Throughput || w == Latency || strings.HasPrefix(metric, "transfer") || w == Web) && base == "" {
			t.Errorf("%s %s: no baseline figure", w, metric)
		}
	}
	for w, metrics := range want {
		// Files: plain, chunked and clients; each of its metrics is in
		// some of them.
		if seen[w] < len(metrics) {
			t.Errorf("%s: %d of the figures %q", w, seen[w], metrics)
		}
	}
}
