package bench

import (
	"bytes"
	"encoding/csv"
	"math"
	"strings"
	"testing"
)

func TestFormatNum(t *testing.T) {
	cases := map[float64]string{
		0: "0", 1234567: "1234567", 512214.4: "512214", 100: "100", 99.95: "100.0",
		43.21: "43.2", 1.5: "1.50", 0.379: "0.379", 0.01234: "0.0123", -2.5: "-2.50",
		math.NaN(): "-", math.Inf(1): "inf",
	}
	for v, want := range cases {
		if got := FormatNum(v); got != want {
			t.Errorf("FormatNum(%v) = %q, want %q", v, got, want)
		}
	}
	if got := FormatRatio(0.5123); got != "0.512x" {
		t.Errorf("FormatRatio = %q", got)
	}
	if got := FormatRatio(math.NaN()); got != "-" {
		t.Errorf("FormatRatio(NaN) = %q", got)
	}
}

func TestRowRatio(t *testing.T) {
	r := Row{Baseline: "nats-server", Ours: 50, Base: 100}
	if r.Ratio() != 0.5 {
		t.Errorf("ratio %v", r.Ratio())
	}
	for _, r := range []Row{
		{Baseline: "", Ours: 1, Base: 2},
		{Baseline: "x", Ours: 1, Base: math.NaN()},
		{Baseline: "x", Ours: 1, Base: 0},
	} {
		if !math.IsNaN(r.Ratio()) {
			t.Errorf("%+v: ratio %v, want NaN", r, r.Ratio())
		}
	}
}

var sampleRows = []Row{
	{Workload: "throughput", Params: "clients=100", Baseline: "nats-server", Metric: "delivered", Unit: "msgs/s", Ours: 500000, Base: 1000000, Target: ">= 0.5x"},
	{Workload: "throughput", Params: "clients=100", Baseline: "nats-server", Metric: "delivered", Unit: "MB/s", Ours: 16, Base: 32},
	{Workload: "scale", Params: "clients=10", Metric: "server RSS per idle client", Unit: "KiB", Ours: 12.5, Base: math.NaN()},
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleRows); err != nil {
		t.Fatal(err)
	}
	want := `throughput  clients=100
  metric     unit      chat  nats-server   ratio  target
  delivered  msgs/s  500000      1000000  0.500x  >= 0.5x
  delivered  MB/s      16.0         32.0  0.500x

scale  clients=10
  metric                      unit  chat
  server RSS per idle client  KiB   12.5
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, sampleRows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("records %q", recs)
	}
	if got := strings.Join(recs[1], "|"); got != "throughput|clients=100|delivered|msgs/s|500000|nats-server|1e+06|0.5|>= 0.5x" {
		t.Errorf("row 1 = %s", got)
	}
	if got := strings.Join(recs[3], "|"); got != "scale|clients=10|server RSS per idle client|KiB|12.5||||" {
		t.Errorf("row 3 = %s", got)
	}
}

func TestGroupsKeepOrder(t *testing.T) {
	rows := []Row{{Workload: "a", Params: "1"}, {Workload: "a", Params: "1"}, {Workload: "a", Params: "2"}, {Workload: "b", Params: "2"}, {Workload: "a", Params: "1"}}
	g := groups(rows)
	if len(g) != 4 || len(g[0]) != 2 || g[3][0].Workload != "a" {
		t.Fatalf("groups %v", g)
	}
}
