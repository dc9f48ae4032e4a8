package server

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// TestOriginsCursors: a cursor comes before a counted frame from another
// origin than the last, naming every origin's position and the next run's
// origin; a client's cursor and count after it give back every origin's
// position; a replay from a kept frame regenerates the cursors as they
// were; a frame of an origin already past is seen.
func TestOriginsCursors(t *testing.T) {
	o := newOrigins()
	pushes := []struct {
		origin string
		seq    uint64
		cursor string // payload of the cursor before it; "" for none
	}{
		{"", 0, ""},
		{"n2/a", 1, "n2/a -=1"},
		{"n2/a", 2, ""},
		{"n3/b", 1, "n3/b -=1 n2/a=2"},
		{"", 0, "- -=1 n2/a=2 n3/b=1"},
		{"n2/a", 3, "n2/a -=2 n2/a=2 n3/b=1"},
	}
	for i, p := range pushes {
		var got string
		if cur := o.cursorBefore(p.origin); cur != nil {
			got = string(cursorTail(cur))
		}
		if got != p.cursor {
			t.Errorf("push %d (%q %d): cursor %q, want %q", i, p.origin, p.seq, got, p.cursor)
		}
		o.kept(p.origin, p.seq)
	}
	if !o.seen("n2/a", 3) || o.seen("n2/a", 4) || o.seen("", 0) {
		t.Errorf("seen: n2/a 3 %v (want true), n2/a 4 %v, local %v (want false)", o.seen("n2/a", 3), o.seen("n2/a", 4), o.seen("", 0))
	}

	for _, tc := range []struct {
		cursor string
		j      uint64
		want   map[string]uint64
	}{
		{"n3/b -=1 n2/a=2", 1, map[string]uint64{"-": 1, "n2/a": 2, "n3/b": 1}},
		{"- -=1 n2/a=2 n3/b=1", 5, map[string]uint64{"-": 6, "n2/a": 2, "n3/b": 1}},
		{"n2/a", 0, map[string]uint64{"n2/a": 0}},
	} {
		got, err := parseCursor([]byte(tc.cursor), tc.j)
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("parseCursor(%q, %d) = %v, %v; want %v", tc.cursor, tc.j, got, err, tc.want)
		}
	}
	for _, bad := range []string{"- n2/a", "- n2/a=x", "- =3", "- n2/a=-1", "=", " -=1", "a=b -=1"} {
		if got, err := parseCursor([]byte(bad), 0); err == nil {
			t.Errorf("parseCursor(%q) = %v, want an error", bad, got)
		}
	}

	// A resume after the first frame replays frames 2-6 with their cursors.
	r := o.replayFrom(1)
	want := []string{"n2/a -=1 n2/a=0 n3/b=0", "", "n3/b -=1 n2/a=2 n3/b=0", "- -=1 n2/a=2 n3/b=1", "n2/a -=2 n2/a=2 n3/b=1"}
	for i := 1; i < len(pushes); i++ {
		var got string
		if cur := r.before(i); cur != nil {
			got = string(cursorTail(cur))
		}
		if got != want[i-1] {
			t.Errorf("replay of frame %d: cursor %q, want %q", i, got, want[i-1])
		}
	}
}

// cursorTail returns a cursor frame's payload.
func cursorTail(frame []byte) []byte {
	h, err := protocol.NewReader(bytes.NewReader(frame)).ReadHeader()
	if err != nil || h.Type != protocol.Cursor {
		return nil
	}
	return frame[len(frame)-int(h.Length):]
}

// FuzzParseCursor: a cursor from a stranger's resume either is refused or
// names positions under non-empty origin names, and those positions, made
// into a cursor again, read back the same.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"n3/b -=1 n2/a=2", "- -=1 n2/a=2 n3/b=1", "n2/a", "- n2/a", "- =3", "- n2/a=-1", "", " ", "-  -=1", "a=b c=1=2", "- x=18446744073709551615", "- x=18446744073709551616"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, c []byte) {
		pos, err := parseCursor(c, 0)
		if err != nil {
			return
		}
		others := maps.Clone(pos)
		delete(others, localOrigin)
		for o := range others {
			if o == "" || strings.ContainsAny(o, " =") {
				t.Fatalf("parseCursor(%q) accepted origin %q", c, o)
			}
		}
		enc := encodeCursor("", pos[localOrigin], others)
		back, err := parseCursor(enc, 0)
		if err != nil {
			t.Fatalf("parseCursor(encodeCursor(%v)) = %v", pos, err)
		}
		if len(back) != len(others)+1 {
			return // more origins than a cursor holds: encodeCursor stops
		}
		want := maps.Clone(others)
		want[localOrigin] = pos[localOrigin]
		if !maps.Equal(back, want) {
			t.Fatalf("parseCursor(%q) = %v; made into a cursor again it reads %v", c, pos, back)
		}
	})
}
