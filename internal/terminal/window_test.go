package terminal

import (
	"strings"
	"testing"
)

// spans returns the clusters of line.
func spans(line string) []cellSpan {
	var cells []cellSpan
	col := 0
	eachCluster([]byte(line), func(start, end, w int) bool {
		cells = append(cells, cellSpan{start, end, w, col})
		col += w
		return true
	})
	return cells
}

func TestWindow(t *testing.T) {
	long := strings.Repeat("abcdefghij", 3) // 30 columns
	for _, c := range []struct {
		name        string
		line        string
		at, avail   int
		from        int
		first, last int
	}{
		{"fits", "hello", 5, 10, 0, 0, 5},
		{"fits exactly, cursor at the end", "0123456789", 10, 10, 0, 0, 10},
		{"cursor at the end of a long line", long, 30, 10, 0, 22, 30},              // <+8 letters+cursor
		{"cursor at the start", long, 0, 10, 0, 0, 9},                              // 9 letters+>
		{"the view stays put while the cursor is in it", long, 15, 10, 10, 10, 18}, // <+8+>
		{"the cursor pushes it right", long, 20, 10, 10, 13, 21},
		{"the cursor pushes it left", long, 5, 10, 10, 5, 13},
		{"a wide cursor cell", strings.Repeat("日", 10), 10, 10, 0, 6, 10}, // <+4 wide+cursor
		{"wide characters cut on the right", strings.Repeat("日", 10), 0, 10, 0, 0, 4},
		{"the end comes back as the line shrinks", long[:12], 12, 10, 20, 4, 12},
	} {
		first, last := window(spans(c.line), c.at, c.avail, c.from)
		if first != c.first || last != c.last {
			t.Errorf("%s: window = %d, %d; want %d, %d", c.name, first, last, c.first, c.last)
		}
		// Whatever it is, it fits, holds the cursor, and says where the
		// line goes on. (A cursor after the last character may rest in
		// the column after avail: nothing is written there.)
		cells := spans(c.line)
		used := 0
		for _, cl := range cells[first:last] {
			used += cl.width
		}
		if first > 0 {
			used++
		}
		if last < len(cells) {
			used++
		}
		if used > c.avail || c.at < first || c.at > last || c.at == last && last < len(cells) {
			t.Errorf("%s: [%d, %d) takes %d of %d columns, cursor %d", c.name, first, last, used, c.avail, c.at)
		}
	}
}
