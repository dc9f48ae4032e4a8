package cluster

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// keepN numbers and keeps n frames of size bytes each in rt, as send does.
func keepN(rt *retained, n, size int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for range n {
		rt.seq++
		rt.keepLocked(make([]byte, size))
	}
}

// replayed returns the sequences rt would replay after after, and how
// many it counts missed.
func replayed(rt *retained, after uint64) ([]uint64, uint64) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var seqs []uint64
	missed := rt.replayLocked(after, func(f keptFrame) { seqs = append(seqs, f.seq) })
	return seqs, missed
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestRetainedBound: an origin keeps for a user at most the bytes the
// user's record allows (its node's --resume-buffer, or nothing for a
// client without cursors), the newest; a replay after any position gives
// the frames it kept after it, in order, and counts exactly those it let
// go of, so that replayed + missed is everything after the position; the
// node's total follows what is kept.
func TestRetainedBound(t *testing.T) {
	tests := []struct {
		limit, frames, size int
		after               uint64
		want                []uint64
		missed              uint64
	}{
		{limit: 1 << 20, frames: 30, size: 1000, after: 0, want: seqRange(1, 30)},
		{limit: 10_000, frames: 30, size: 1000, after: 0, want: seqRange(21, 30), missed: 20},
		{limit: 10_000, frames: 30, size: 1000, after: 25, want: seqRange(26, 30)},
		{limit: 10_000, frames: 30, size: 1000, after: 30},
		{limit: 10_500, frames: 30, size: 1000, after: 5, want: seqRange(21, 30), missed: 15},
		{limit: 0, frames: 30, size: 1000, after: 0, missed: 30},
		{limit: 0, frames: 30, size: 1000, after: 12, missed: 18},
		{limit: 999, frames: 3, size: 1000, after: 1, missed: 2}, // a frame larger than the bound
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit %d after %d", tc.limit, tc.after), func(t *testing.T) {
			total := new(atomic.Int64)
			rt := &retained{window: time.Hour, total: total}
			rt.limit.Store(int64(tc.limit))
			keepN(rt, tc.frames, tc.size)
			got, missed := replayed(rt, tc.after)
			if !slices.Equal(got, tc.want) || missed != tc.missed {
				t.Errorf("replay after %d: %v, missed %d; want %v, missed %d", tc.after, got, missed, tc.want, tc.missed)
			}
			if uint64(len(got))+missed != uint64(tc.frames)-min(tc.after, uint64(tc.frames)) {
				t.Errorf("replayed %d + missed %d is not the %d frames after %d", len(got), missed, tc.frames, tc.after)
			}
			if b := total.Load(); b != int64(rt.bytes) || b > int64(tc.limit) {
				t.Errorf("node's total %d, kept %d, bound %d", b, rt.bytes, tc.limit)
			}
		})
	}
}

// TestRetainedBoundFollowsRecord: the bound comes from the user's record
// each time the relay looks the user up, so a record that moved to a
// node with another --resume-buffer (or a client that stopped reading
// cursors) changes what the origins keep from then on.
func TestRetainedBoundFollowsRecord(t *testing.T) {
	r := &relay{}
	key := creditKey{"bob", 7}
	ri := resumeInfo{hash: "h", window: 60_000, retain: 1 << 20}
	rt := r.retainedFor(key, &ri)
	keepN(rt, 10, 1000)
	ri.retain = 2000
	if again := r.retainedFor(key, &ri); again != rt {
		t.Fatal("a second look-up made another retained")
	}
	keepN(rt, 1, 1000)
	if got, missed := replayed(rt, 0); !slices.Equal(got, []uint64{10, 11}) || missed != 9 {
		t.Errorf("after the bound fell to 2000: replay %v, missed %d; want [10 11], missed 9", got, missed)
	}
	if r.retainedFor(creditKey{"carol", 1}, nil) != nil {
		t.Error("a look-up without a record made a retained")
	}
	if b := r.retBytes.Load(); b != 2000 {
		t.Errorf("node's total %d, want 2000", b)
	}
}
