package client

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// fakeFile is what a sink wrote through fakeDisk: the content, and each
// write call as "d16" (direct, 16 buffers) or "b1" (buffered, 1 buffer).
type fakeFile struct {
	content   bytes.Buffer
	calls     []string
	isDirect  bool
	openFails bool          // direct(true) fails: a file system without O_DIRECT
	refuseAt  int           // the refuseAt-th direct write (from 1) is refused; 0: none
	delay     time.Duration // how long each direct write takes
	directs   int           // direct writes made
}

func (ff *fakeFile) disk() *diskOps {
	return &diskOps{
		direct: func(_ *os.File, on bool) error {
			if on && ff.openFails {
				return errors.New("EINVAL")
			}
			ff.isDirect = on
			return nil
		},
		write: func(_ *os.File, bufs [][]byte) (int, error) {
			kind := "b"
			if ff.isDirect {
				kind = "d"
				ff.directs++
				if ff.directs == ff.refuseAt {
					return 0, errDirectRefused
				}
				time.Sleep(ff.delay) // the disk, not a wait for a condition
			}
			n := 0
			for _, b := range bufs {
				ff.content.Write(b)
				n += len(b)
			}
			ff.calls = append(ff.calls, fmt.Sprintf("%s%d", kind, len(bufs)))
			return n, nil
		},
	}
}

// TestSink feeds a sink buffers as a saver does and checks what it wrote,
// and how: direct writes of gathered runs while it may, buffered writes
// from the first thing that rules them out, the content whole and in
// order, and every buffer given back.
func TestSink(t *testing.T) {
	full := func(k int) []int { return slices.Repeat([]int{saveBufSize}, k) }
	big := int64(directMin)
	cases := []struct {
		name  string
		size  int64 // as declared
		bufs  []int // the buffers' lengths, in order
		more  func(i int) bool
		setup func(*fakeFile)
		calls []string
	}{
		{name: "runs of 16 while more are queued", size: big, bufs: full(40),
			more:  func(int) bool { return true },
			calls: []string{"d16", "d16", "d8"}}, // close writes the last run gathered
		{name: "a saver that keeps up writes each buffer", size: big, bufs: full(3),
			more:  func(int) bool { return false },
			calls: []string{"d1", "d1", "d1"}},
		{name: "the tail goes buffered", size: big, bufs: append(full(17), 1000),
			more:  func(i int) bool { return i != 16 },
			calls: []string{"d16", "d1", "b1"}},
		{name: "a partial buffer mid-file ends direct writes", size: big, bufs: append(append(full(3), 500), full(2)...),
			more:  func(int) bool { return true },
			calls: []string{"d3", "b1", "b1", "b1"}},
		{name: "small file", size: directMin - 1, bufs: append(full(2), 7),
			more:  func(int) bool { return true },
			calls: []string{"b1", "b1", "b1"}},
		{name: "no O_DIRECT", size: big, bufs: full(3),
			more:  func(int) bool { return true },
			setup: func(ff *fakeFile) { ff.openFails = true },
			calls: []string{"b1", "b1", "b1"}},
		{name: "a refused direct write goes buffered", size: big, bufs: full(4),
			more:  func(i int) bool { return i != 1 },
			setup: func(ff *fakeFile) { ff.refuseAt = 1 },
			calls: []string{"b2", "b1", "b1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ff := &fakeFile{}
			if tc.setup != nil {
				tc.setup(ff)
			}
			freed := 0
			s := newSink(nil, tc.size, ff.disk(), func([]byte) { freed++ })
			var want bytes.Buffer
			for i, n := range tc.bufs {
				b := bytes.Repeat([]byte{byte('a' + i%26)}, n)
				want.Write(b)
				if err := s.write(b, tc.more(i)); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			if err := s.close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			s.drop()
			if !slices.Equal(ff.calls, tc.calls) {
				t.Errorf("writes %v, want %v", ff.calls, tc.calls)
			}
			if !bytes.Equal(ff.content.Bytes(), want.Bytes()) {
				t.Errorf("content differs: %d bytes written, %d sent", ff.content.Len(), want.Len())
			}
			if freed != len(tc.bufs) {
				t.Errorf("%d buffers given back, want %d", freed, len(tc.bufs))
			}
			if ff.isDirect {
				t.Error("O_DIRECT still on after close")
			}
		})
	}
}

// TestSinkSlowDisk: direct writes slower than the network while buffers
// wait for the saver make the sink buffered; slow writes with nothing
// waiting, or a backlog behind fast writes, do not.
func TestSinkSlowDisk(t *testing.T) {
	const most = saveBudget / saveBufSize
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		backlog int
		slow    bool
	}{
		{"slow disk, content waiting", 5 * time.Millisecond, most, true},
		{"slow disk, nothing waiting", 5 * time.Millisecond, 0, false},
		{"fast disk, content waiting", 0, most, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ff := &fakeFile{delay: tc.delay}
			s := newSink(nil, directMin, ff.disk(), func([]byte) {})
			// One buffer in 5 ms: 80 ms per directRun buffers.
			if err := s.write(make([]byte, saveBufSize), false); err != nil {
				t.Fatal(err)
			}
			if got := s.slow(tc.backlog, most); got != tc.slow {
				t.Errorf("slow = %v (average %v per run), want %v", got, s.avg, tc.slow)
			}
		})
	}
}

// TestSinkDropGivesBuffersBack: a download given up while the sink has
// buffers gathered gets every buffer back without a write.
func TestSinkDropGivesBuffersBack(t *testing.T) {
	ff := &fakeFile{}
	freed := 0
	s := newSink(nil, directMin, ff.disk(), func([]byte) { freed++ })
	for range 5 {
		if err := s.write(make([]byte, saveBufSize), true); err != nil {
			t.Fatal(err)
		}
	}
	s.drop()
	if freed != 5 || len(ff.calls) != 0 {
		t.Errorf("after drop: %d buffers back, writes %v; want 5 and none", freed, ff.calls)
	}
}
