package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Row is one figure of a run: ours, and the baseline's when the workload
// has one.
type Row struct {
	Workload string  // throughput, latency, scale, files
	Params   string  // the run's parameters, e.g. "clients=100 size=32B recipients=1"
	System   string  // what Ours measured, e.g. "cluster"; "" is "chat" (one server)
	Baseline string  // the baseline's name, e.g. "nats-server"; "" if none
	Metric   string  // e.g. "delivered"
	Unit     string  // e.g. "msgs/s"
	Ours     float64 // our figure
	Base     float64 // the baseline's figure; NaN if none
	Target   string  // the target for this figure, if any, e.g. "<= 16"
}

// HasBase reports whether the row has a baseline figure.
func (r Row) HasBase() bool { return r.Baseline != "" && !math.IsNaN(r.Base) }

// Ratio returns Ours/Base, or NaN when there is no baseline figure or it
// is zero.
func (r Row) Ratio() float64 {
	if !r.HasBase() || r.Base == 0 {
		return math.NaN()
	}
	return r.Ours / r.Base
}

// FormatNum formats v with about three significant digits, without
// exponent: 1234567 -> "1234567", 12.345 -> "12.3", 0.01234 -> "0.0123".
// NaN is "-".
func FormatNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(v, 0):
		return "inf"
	}
	a := math.Abs(v)
	prec := 0
	switch {
	case a == 0 || a >= 100:
		prec = 0
	case a >= 10:
		prec = 1
	case a >= 1:
		prec = 2
	default:
		// Three significant digits below 1.
		prec = 2 - int(math.Floor(math.Log10(a)))
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// FormatRatio formats a ratio as "0.52x", or "-".
func FormatRatio(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return FormatNum(v) + "x"
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// groups splits rows into runs of consecutive rows with the same workload
// and parameters, keeping their order.
func groups(rows []Row) [][]Row {
	var out [][]Row
	for i, r := range rows {
		if i > 0 && r.Workload == rows[i-1].Workload && r.Params == rows[i-1].Params {
			out[len(out)-1] = append(out[len(out)-1], r)
			continue
		}
		out = append(out, []Row{r})
	}
	return out
}

// WriteTable writes rows as aligned text tables, one per workload run.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	for gi, g := range groups(rows) {
		if gi > 0 {
			b.WriteByte('\n')
		}
		baseName := ""
		hasTarget := false
		for _, r := range g {
			if r.Baseline != "" && baseName == "" {
				baseName = r.Baseline
			}
			hasTarget = hasTarget || r.Target != ""
		}
		fmt.Fprintf(&b, "%s  %s\n", g[0].Workload, g[0].Params)
		system := g[0].System
		if system == "" {
			system = "chat"
		}
		head := []string{"metric", "unit", system}
		if baseName != "" {
			head = append(head, baseName, "ratio")
		}
		if hasTarget {
			head = append(head, "target")
		}
		cells := [][]string{head}
		for _, r := range g {
			line := []string{r.Metric, r.Unit, FormatNum(r.Ours)}
			if baseName != "" {
				base := "-"
				if r.HasBase() {
					base = FormatNum(r.Base)
				}
				line = append(line, base, FormatRatio(r.Ratio()))
			}
			if hasTarget {
				line = append(line, r.Target)
			}
			cells = append(cells, line)
		}
		writeAligned(&b, cells)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAligned writes cells as columns separated by two spaces, text
// columns left-aligned and the rest right-aligned.
func writeAligned(b *strings.Builder, cells [][]string) {
	var widths []int
	for _, line := range cells {
		for i, c := range line {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, line := range cells {
		var l strings.Builder
		l.WriteString("  ")
		for i, c := range line {
			if i > 0 {
				l.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(c))
			if i < 2 || cells[0][i] == "target" {
				l.WriteString(c + pad)
			} else {
				l.WriteString(pad + c)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
}

// CSVHeader is the first record of WriteCSV's output. The "chat" field is
// Ours, whatever the System (a cluster's runs say cluster=N in params).
var CSVHeader = []string{"workload", "params", "metric", "unit", "chat", "baseline", "baseline_value", "ratio", "target"}

// WriteCSV writes rows as CSV with CSVHeader first. Missing numbers are
// empty fields; numbers are written in full precision.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	num := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, r := range rows {
		base := math.NaN()
		if r.HasBase() {
			base = r.Base
		}
		rec := []string{r.Workload, r.Params, r.Metric, r.Unit, num(r.Ours), r.Baseline, num(base), num(r.Ratio()), r.Target}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
