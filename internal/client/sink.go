package client

import (
	"errors"
	"os"
	"time"
)

// A saver writes a large file through O_DIRECT where the file system takes
// it: the buffers the receiver read the content into go straight to the
// disk, a run of them at a time, without the copy into the page cache that
// a buffered write makes. That copy was half of the receiving client's CPU
// for a 1 GiB download (perf: copy_folio_from_iter_atomic 47% of its
// samples, against 9% for the read from the socket), on a machine where
// the three processes of a transfer share two cores (issue 19, part 3).
//
// Measured on the way (bob's CPU for 1 GiB, the base client 72-84 ticks):
// gathering the buffers into one aligned block by copy cost nearly as much
// as the page cache (runtime.memmove 28%); reading content into 1 MiB
// buffers and writing those buffered cost 207-232 ticks, as the buffer is
// no longer in the CPU's cache when it is written, where a 64 KiB one,
// written as soon as it is full, still is. Hence buffers of 64 KiB, and a
// direct write takes a run of them (writev), all those queued up to 1 MiB:
// dd on this machine, beside other work, wrote 1.5 GB/s in 1 MiB direct
// writes and 408 MB/s in 64 KiB ones. A saver that keeps up writes small
// runs; one that falls behind finds more queued, and writes larger ones.
// It never holds a buffer waiting for the next (the receiver may need it
// to read that next one).
const (
	// saveBufSize is the size of the buffers content is read into: a
	// multiple of any device's logical block (512 or 4096 bytes), and
	// page-aligned (mapBlock), so that every direct write is aligned.
	saveBufSize = 64 << 10
	// directRun is the most full buffers one direct write takes.
	directRun = 16
	// directMin is the smallest file written directly: a small file is
	// written faster to the page cache than a direct write waits for
	// the disk.
	directMin = 4 * directRun * saveBufSize
	// slowRun is how long direct writes may take per directRun buffers
	// (1 MiB), on average, before the disk counts as slower than the
	// network (100 MB/s), if content waits for the saver meanwhile: the rest of
	// the file then goes to the page cache, which lets chat flow past a
	// slow disk as it did before. Both must hold: on two busy cores the
	// saver falls behind while its disk is fast (a backlog alone turned
	// direct writes off after 15 MiB of 1 GiB at load 15), and single
	// direct writes took 47-61 ms now and then beside other work, once
	// in 100 or so (an average over several runs lets them pass).
	slowRun = 10 * time.Millisecond
)

// sink writes a download's content to its temporary file, in order. While
// it is direct, it gathers full buffers into a run while more are queued,
// and writes the run directly (O_DIRECT); anything else (a small file, a file system that
// refuses O_DIRECT or a direct write, a partial buffer, which leaves the
// next ones unaligned, a slow disk) turns direct writes off for the rest
// of the file, and each buffer is then written buffered as it comes.
// Owned by the saver.
type sink struct {
	f    *os.File
	disk *diskOps
	free func(b []byte) // takes back a buffer written

	direct  bool          // full buffers are written directly, by runs
	run     [][]byte      // the full buffers gathered for the next direct write
	written int64         // bytes in the file
	avg     time.Duration // direct writes' time per directRun buffers, averaged over the last few
}

// newSink returns a sink for f, a new empty file of size bytes, direct if
// the file is large enough and its file system takes O_DIRECT. free takes
// back the buffers once written.
func newSink(f *os.File, size int64, disk *diskOps, free func([]byte)) *sink {
	s := &sink{f: f, disk: disk, free: free}
	s.direct = size >= directMin && disk.direct(f, true) == nil
	return s
}

// write takes b, the next buffer of content: full (saveBufSize bytes,
// page-aligned) except at the end of the file or after a spill. more says
// another buffer is queued already: a direct sink then gathers b into its
// run, unless the run is whole.
func (s *sink) write(b []byte, more bool) error {
	if s.direct && len(b) == saveBufSize {
		s.run = append(s.run, b)
		if more && len(s.run) < directRun {
			return nil
		}
		return s.writeRun()
	}
	if err := s.buffered(); err != nil {
		s.free(b)
		return err
	}
	return s.writeBufs([][]byte{b})
}

// writeRun writes the full buffers held, directly.
func (s *sink) writeRun() error {
	start := time.Now()
	run := s.run
	s.run = s.run[:0]
	n, err := s.disk.write(s.f, run)
	perRun := time.Since(start) * directRun / time.Duration(len(run))
	s.avg += (perRun - s.avg) / 4
	s.written += int64(n)
	if n == 0 && errors.Is(err, errDirectRefused) {
		if err := s.buffered(); err != nil {
			s.freeAll(run)
			return err
		}
		return s.writeBufs(run)
	}
	s.freeAll(run)
	return err
}

// writeBufs writes bufs buffered and takes them back.
func (s *sink) writeBufs(bufs [][]byte) error {
	n, err := s.disk.write(s.f, bufs)
	s.written += int64(n)
	s.freeAll(bufs)
	return err
}

func (s *sink) freeAll(bufs [][]byte) {
	for _, b := range bufs {
		s.free(b)
	}
}

// buffered turns direct writes off for the rest of the file, first
// writing the buffers gathered.
func (s *sink) buffered() error {
	if !s.direct {
		return nil
	}
	var err error
	if len(s.run) > 0 {
		err = s.writeRun() // full buffers: still aligned
	}
	s.direct = false
	if derr := s.disk.direct(s.f, false); err == nil {
		err = derr
	}
	return err
}

// slow says the disk falls behind the network: direct writes took longer
// than slowRun on average while backlog buffers of content waited for
// the saver, more than half of most (see slowRun).
func (s *sink) slow(backlog, most int) bool {
	return s.direct && s.avg > slowRun && backlog > most/2
}

// close writes the buffers gathered and turns direct writes off. The
// file stays open: the saver syncs and closes it.
func (s *sink) close() error { return s.buffered() }

// drop takes back the buffers gathered without writing them (the
// download was given up, or a write failed).
func (s *sink) drop() {
	s.freeAll(s.run)
	s.run = nil
}
