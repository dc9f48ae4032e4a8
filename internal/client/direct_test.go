//go:build linux

package client

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gochat/chat/internal/protocol"
)

// takesDirect reports whether the file system of dir takes O_DIRECT.
func takesDirect(t *testing.T, dir string) bool {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if setDirect(f, true) != nil {
		return false
	}
	b, err := mapBlock(saveBufSize)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	_, err = writeFile(f, [][]byte{b})
	return err == nil
}

// A large file received in chunks of any size, chat between them, is
// saved whole, its full buffers written directly where the file system
// takes O_DIRECT and its tail buffered, and the file descriptor left
// without O_DIRECT; on both deliveries.
func TestLargeFileWrittenDirect(t *testing.T) {
	size := directMin + 3*saveBufSize + 12345
	content := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	for _, chunked := range []bool{false, true} {
		t.Run(map[bool]string{false: "forward_file", true: "chunked"}[chunked], func(t *testing.T) {
			dir := t.TempDir()
			direct := takesDirect(t, dir)
			var frames []byte
			if chunked {
				// Chunks of odd sizes: the buffers fill across them.
				frames = protocol.AppendFileBegin(nil, 1, "bob", "big.bin", int64(size))
				for rest := content; len(rest) > 0; {
					k := min(len(rest), 1+rng.IntN(protocol.MaxChunkData))
					frames = protocol.ChunkHeader(frames, 1, k)
					frames = append(frames, rest[:k]...)
					rest = rest[k:]
					if rng.IntN(50) == 0 {
						frames = protocol.AppendFrame(frames, protocol.ForwardMessage, []byte("carol hi"))
					}
				}
				frames = protocol.AppendFileID(frames, protocol.FileEnd, 1)
			} else {
				frames = fileFrames(false, "big.bin", content)
			}
			var stdout syncBuffer
			c := newClient(Config{User: "me", DownloadDir: dir, Stdout: &stdout, Stderr: io.Discard})
			c.chunked = chunked
			nc, peer := net.Pipe()
			defer peer.Close()
			c.nc = nc
			var directWrites, directBytes atomic.Int64
			var on atomic.Bool
			setDirectReal := c.disk.direct
			c.disk.direct = func(f *os.File, v bool) error {
				err := setDirectReal(f, v)
				if err == nil {
					on.Store(v)
				}
				return err
			}
			c.disk.write = func(f *os.File, bufs [][]byte) (int, error) {
				n, err := writeFile(f, bufs)
				if on.Load() && err == nil {
					directWrites.Add(1)
					directBytes.Add(int64(n))
				}
				return n, err
			}
			c.disk.sync = func(f *os.File) error {
				if flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || flags&unix.O_DIRECT != 0 {
					t.Errorf("file synced with flags %#x (%v): O_DIRECT still on", flags, err)
				}
				return f.Sync()
			}
			c.receive(protocol.NewReader(bytes.NewReader(frames))) // returns at the end of frames
			if !strings.Contains(stdout.String(), "file: bob: big.bin\n") {
				t.Fatalf("file not saved: stdout %q", stdout.String())
			}
			got, err := os.ReadFile(filepath.Join(dir, "me_big.bin"))
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("saved file differs from what was sent (%d bytes of %d; %v)", len(got), size, err)
			}
			t.Logf("O_DIRECT taken: %v; %d direct writes of %d bytes", direct, directWrites.Load(), directBytes.Load())
			if direct {
				// All full buffers: the size less the tail.
				if want := int64(size / saveBufSize * saveBufSize); directBytes.Load() != want {
					t.Errorf("%d bytes written directly, want %d", directBytes.Load(), want)
				}
			} else if directWrites.Load() != 0 {
				t.Errorf("%d direct writes where the file system refuses O_DIRECT", directWrites.Load())
			}
		})
	}
}

// When other downloads hold every buffer, each partly filled, a download
// that needs one gets it: the partial buffers go to their savers (which
// write them and give them back) instead of the receiver waiting for
// ever.
func TestGetBufSpillsPartialBuffers(t *testing.T) {
	var stdout syncBuffer
	c := newClient(Config{User: "me", DownloadDir: t.TempDir(), Stdout: &stdout, Stderr: io.Discard})
	d1 := c.startDownload("bob", "one.bin", directMin)
	d2 := c.startDownload("carol", "two.bin", directMin)
	// d1 fills part of one buffer; every other buffer is held elsewhere.
	if err := d1.fill(strings.NewReader("partial"), 7); err != nil {
		t.Fatal(err)
	}
	var held [][]byte
	for c.madeBufs < saveBudget/saveBufSize || len(c.freeBufs) > 0 {
		held = append(held, c.getBuf(nil))
	}
	got := make(chan []byte, 1)
	go func() { got <- c.getBuf(d2) }()
	select {
	case b := <-got:
		if len(b) != 0 || cap(b) != saveBufSize {
			t.Errorf("getBuf returned len %d cap %d", len(b), cap(b))
		}
		c.freeBufs <- b
	case <-time.After(waitTimeout):
		t.Fatal("getBuf waits for ever while another download holds a buffer partly filled")
	}
	if d1.cur != nil || len(c.filling) != 0 {
		t.Errorf("d1's partial buffer not handed to its saver (cur %d bytes, %d filling)", len(d1.cur), len(c.filling))
	}
	for _, b := range held {
		c.freeBufs <- b
	}
	c.finishDownload(d1, nil, false)
	c.finishDownload(d2, nil, false)
	c.saves.Wait()
	if b, err := os.ReadFile(filepath.Join(c.cfg.DownloadDir, "me_one.bin")); err != nil || string(b) != "partial" {
		t.Errorf("one.bin: %q, %v", b, err)
	}
}
