package server

import (
	"maps"
	"testing"
)

// TestAckedPositions: as the client acknowledges frames, the session
// notes each origin's position in them (the last acknowledged frame of
// each origin) for the hub to tell the origins, once (TakeAcked empties
// it); frames let go of past the resume buffer before they were
// acknowledged are not attributed; a position skipped to (counted missed
// for a resume) drops that origin's frames up to it.
func TestAckedPositions(t *testing.T) {
	type push struct {
		origin string
		seq    uint64
	}
	frames := []push{{"a/1", 1}, {"b/1", 1}, {"a/1", 2}, {"", 0}, {"b/1", 2}, {"a/1", 3}}
	tests := []struct {
		name   string
		buffer int // bytes; every frame is 10
		acks   []uint64
		want   []map[string]uint64 // TakeAcked after each ack
	}{
		{"all kept", 1 << 20, []uint64{3, 3, 4, 6}, []map[string]uint64{{"a/1": 2, "b/1": 1}, nil, nil, {"a/1": 3, "b/1": 2}}},
		{"the first three dropped unacknowledged", 30, []uint64{6}, []map[string]uint64{{"a/1": 3, "b/1": 2}}},
		{"only the last kept", 10, []uint64{5, 6}, []map[string]uint64{nil, {"a/1": 3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &session{srv: &Server{cfg: Config{ResumeBuffer: tc.buffer}}, first: 1, org: newOrigins()}
			for _, f := range frames {
				if _, err := s.pushFrom(make([]byte, 10), false, f.origin, f.seq); err != nil {
					t.Fatal(err)
				}
			}
			for i, n := range tc.acks {
				if err := s.ack(n); err != nil {
					t.Fatal(err)
				}
				if got := s.TakeAcked(); !maps.Equal(got, tc.want[i]) {
					t.Errorf("after received %d: TakeAcked %v, want %v", n, got, tc.want[i])
				}
			}
		})
	}

	s := &session{srv: &Server{cfg: Config{ResumeBuffer: 1 << 20}}, first: 1, org: newOrigins()}
	s.SkipTo("a/1", 10)
	for _, seq := range []uint64{5, 10, 11} {
		s.pushFrom(make([]byte, 10), false, "a/1", seq)
	}
	if s.last != 1 || s.org.pos["a/1"] != 11 {
		t.Errorf("after skipping to 10, frames 5, 10, 11 of the origin kept %d (want only 11), position %d", s.last, s.org.pos["a/1"])
	}
	if r := s.Retain(); r != 1<<20 {
		t.Errorf("Retain with cursors: %d, want the resume buffer", r)
	}
	if r := (&session{srv: s.srv}).Retain(); r != 0 {
		t.Errorf("Retain without cursors: %d, want 0", r)
	}
}
