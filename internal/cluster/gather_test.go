package cluster

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"github.com/gochat/chat/internal/server"
)

// The gatherer passes on every byte once, in order, in chunks that cannot
// be appended to, and fills each pooled buffer to its end before it takes
// the next: a part starts where the previous one ended unless that one
// ended its buffer.
func TestGatherer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pieces []int // sizes of the pieces added
		every  int   // flush after every this many pieces (0: only at the end)
	}{
		{"one small piece", []int{10}, 1},
		{"flush after each piece", []int{16 << 10, 16 << 10, 100, 16 << 10}, 1},
		{"pieces across several buffers", repeat(16<<10+7, 100), 3},
		{"no flush until the end", repeat(16<<10, 80), 0},
		{"a piece larger than a buffer", []int{3 << 20, 5}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gatherer{c: server.NewChunk(9)}
			capacity := cap(g.c.Data)
			var want, got []byte
			var parts [][]byte
			pass := func(c server.Chunk) error {
				if c.ID != 9 {
					t.Errorf("a chunk of transfer %d, want 9", c.ID)
				}
				if cap(c.Data) != len(c.Data) {
					t.Errorf("a part of %d bytes can be appended to (capacity %d)", len(c.Data), cap(c.Data))
				}
				got = append(got, c.Data...)
				parts = append(parts, c.Data)
				return nil
			}
			for i, n := range tc.pieces {
				piece := bytes.Repeat([]byte{byte('a' + i%26)}, n)
				want = append(want, piece...)
				if err := g.add(piece, pass); err != nil {
					t.Fatal(err)
				}
				if tc.every > 0 && (i+1)%tc.every == 0 {
					if err := g.flush(pass); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := g.flush(pass); err != nil {
				t.Fatal(err)
			}
			g.release()
			if !bytes.Equal(got, want) {
				t.Fatalf("passed on %d bytes that differ from the %d added", len(got), len(want))
			}
			total := 0
			for i := 1; i < len(parts); i++ {
				total += len(parts[i-1])
				end := uintptr(unsafe.Pointer(unsafe.SliceData(parts[i-1]))) + uintptr(len(parts[i-1]))
				if total%capacity != 0 && uintptr(unsafe.Pointer(unsafe.SliceData(parts[i]))) != end {
					t.Fatalf("part %d starts a new buffer %d bytes into the file, before the last was full", i, total)
				}
			}
		})
	}
}

// A failed pass is returned, and nothing is passed on twice after it.
func TestGathererPassFails(t *testing.T) {
	g := gatherer{c: server.NewChunk(1)}
	defer g.release()
	broken := errors.New("peer gone")
	if err := g.add(make([]byte, 100), func(server.Chunk) error { return broken }); err != nil {
		t.Fatalf("add within a buffer passed something on: %v", err)
	}
	if err := g.flush(func(server.Chunk) error { return broken }); !errors.Is(err, broken) {
		t.Fatalf("flush = %v, want the pass's error", err)
	}
	if err := g.add(make([]byte, cap(g.c.Data)), func(server.Chunk) error { return broken }); !errors.Is(err, broken) {
		t.Fatalf("add over a full buffer = %v, want the pass's error", err)
	}
}

func repeat(n, times int) []int {
	s := make([]int, times)
	for i := range s {
		s[i] = n
	}
	return s
}
