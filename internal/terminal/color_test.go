package terminal

import "testing"

// Every stderr line now starts with "client: " (issue 23 item 7): a file
// sent is still green, a join notice dim, a diagnostic yellow.
func TestStderrLineColors(t *testing.T) {
	p := palette{on: true}
	for _, tc := range []struct{ line, attr string }{
		{"client: sent big.bin to bob (8 B)", sgrGreen},
		{"client: carol joined", sgrDim},
		{"client: carol left", sgrDim},
		{"client: more than 100 users online: join and leave notices pause", sgrDim},
		{"client: join and leave notices resume", sgrDim},
		{"client: cannot read x.txt: no such file or directory", sgrYellow},
		{"client: big.bin did not reach bob (they left or were cut off before they had it all)", sgrYellow},
		{"client: N must be at least 1", sgrYellow},
	} {
		if got, want := p.stderrLine(tc.line), p.paint(tc.line, tc.attr); got != want {
			t.Errorf("stderrLine(%q) = %q, want %q", tc.line, got, want)
		}
	}
}
