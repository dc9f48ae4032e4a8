package terminal

import (
	"fmt"
	"strings"
	"time"

	"github.com/gochat/chat/internal/client"
)

// Progress display settings.
const (
	// showAfter is how long a transfer runs before its bar appears, so that
	// quick ones do not flicker.
	showAfter = 250 * time.Millisecond
	// redrawEvery is how often the bars are redrawn while any is shown.
	redrawEvery = 100 * time.Millisecond
	// rateWindow is the span over which the rate is measured.
	rateWindow = 3 * time.Second
)

// transfer is one file being sent or received.
type transfer struct {
	dir, name   string // dir is "send" or "recv"
	done, total int64
	start       time.Time
	samples     []sample // recent (time, done) pairs, oldest first
	shown       bool     // its bar has been drawn
}

// sample is how much of a transfer had moved at a moment.
type sample struct {
	at   time.Time
	done int64
}

// observe records that done bytes have moved at now.
func (t *transfer) observe(now time.Time, done int64) {
	t.done = done
	t.samples = append(t.samples, sample{now, done})
	cut := 0
	for cut < len(t.samples)-2 && now.Sub(t.samples[cut].at) > rateWindow {
		cut++
	}
	t.samples = t.samples[cut:]
}

// rate returns the recent rate in bytes per second.
func (t *transfer) rate(now time.Time) float64 {
	if len(t.samples) == 0 {
		return 0
	}
	first := t.samples[0]
	if span := now.Sub(first.at).Seconds(); span >= 0.2 {
		return float64(t.done-first.done) / span
	}
	if span := now.Sub(t.start).Seconds(); span > 0 {
		return float64(t.done) / span
	}
	return 0
}

// due reports whether t's bar should be on screen at now.
func (t *transfer) due(now time.Time) bool {
	return t.shown || now.Sub(t.start) >= showAfter
}

// bar renders t's progress line in at most width columns (of plain text;
// colors are added around it).
func (t *transfer) bar(now time.Time, width int, p palette) string {
	verb := "receiving"
	if t.dir == "send" {
		verb = "sending"
	}
	frac := 1.0
	if t.total > 0 {
		frac = float64(t.done) / float64(t.total)
	}
	rate := t.rate(now)
	left := "--:--"
	if rate > 0 && t.done < t.total {
		left = clock(time.Duration(float64(t.total-t.done) / rate * float64(time.Second)))
	} else if t.done >= t.total {
		left = clock(0)
	}
	head := fmt.Sprintf("%s %s ", verb, t.name)
	tail := fmt.Sprintf(" %3d%%  %s / %s  %s/s  %s left",
		int(frac*100), client.FormatSize(t.done), client.FormatSize(t.total), client.FormatSize(int64(rate)), left)
	// The bar gets what is left of the width, 10 to 30 cells.
	cells := min(width-len([]rune(head))-len(tail)-3, 30)
	if cells < 10 {
		return truncate(head+strings.TrimLeft(tail, " "), width-1)
	}
	filled := min(int(frac*float64(cells)), cells)
	inside := strings.Repeat("=", filled)
	if filled < cells {
		inside += ">" + strings.Repeat(" ", cells-filled-1)
	}
	return p.paint(head, sgrBold) + "[" + p.paint(inside, sgrCyan) + "]" + tail
}

// clock formats a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	if n < 0 {
		n = 0
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
