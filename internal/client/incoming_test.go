package client

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// A file declared larger than MaxIncomingFileSize is refused before
// anything is written, its content skipped, and the session goes on
// (issue 23 item 11: a forward_file declaring 9.2 EB began a download).
func TestIncomingFileSizeLimit(t *testing.T) {
	forEachDelivery(t, func(t *testing.T, d delivery) {
		addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
			var b []byte
			b = append(b, fileFrames(d.chunked, "big.bin", bytes.Repeat([]byte("x"), 101))...)
			if d.chunked {
				// A hostile server's declaration: refused at once.
				b = protocol.AppendFileBegin(b, 7, "bob", "huge.bin", 1<<50)
				b = protocol.ChunkHeader(b, 7, 3)
				b = append(b, "abc"...)
				b = protocol.AppendFileID(b, protocol.FileEnd, 7)
			}
			b = append(b, fileFrames(d.chunked, "small.bin", bytes.Repeat([]byte("y"), 100))...)
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
			sendThenAwaitQuit(t, nc, r, b)
		})
		s := d.start(t, addr, func(c *client) {
			c.cfg.MaxIncomingFileSize = 100
		})
		s.quitAfter(t, "msg: bob: after\n")
		if got, want := s.stdout.String(), "file: bob: small.bin\nmsg: bob: after\nquitting\n"; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
		s.expectFiles(t, "me_small.bin")
		e := s.stderr.String()
		if !strings.Contains(e, `client: refusing file "big.bin" from bob: 101 B is more than the 100 B this client takes (--max-incoming-file-size); skipped, nothing saved`) {
			t.Errorf("stderr does not refuse big.bin:\n%s", e)
		}
		if d.chunked && !strings.Contains(e, `client: refusing file "huge.bin" from bob: 1024.0 TiB is more than the 100 B`) {
			t.Errorf("stderr does not refuse huge.bin:\n%s", e)
		}
	})
}

// The files received at once may declare at most maxIncomingTotal times
// MaxIncomingFileSize together: the disk they hold is bounded.
func TestIncomingTotalBounded(t *testing.T) {
	saved := make(chan struct{})
	addr := fakeExtServer(t, func(nc net.Conn, r *protocol.Reader) {
		var b []byte
		for id := uint64(1); id <= maxIncomingTotal+1; id++ {
			b = protocol.AppendFileBegin(b, id, "bob", "f"+string(rune('0'+id)), 100)
		}
		for id := uint64(1); id <= maxIncomingTotal+1; id++ {
			b = protocol.ChunkHeader(b, id, 100)
			b = append(b, bytes.Repeat([]byte("z"), 100)...)
			b = protocol.AppendFileID(b, protocol.FileEnd, id)
		}
		nc.Write(b)
		select { // once those are saved, there is room again
		case <-saved:
		case <-time.After(waitTimeout):
			return
		}
		b = fileFrames(true, "later.bin", []byte("fine"))
		b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
		sendThenAwaitQuit(t, nc, r, b)
	})
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = true
		c.cfg.MaxIncomingFileSize = 100
	})
	waitFor(t, s.stdout, "file: bob: f4\n")
	close(saved)
	s.quitAfter(t, "msg: bob: after\n")
	if got, want := s.stdout.String(), "file: bob: f1\nfile: bob: f2\nfile: bob: f3\nfile: bob: f4\nfile: bob: later.bin\nmsg: bob: after\nquitting\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if e := s.stderr.String(); !strings.Contains(e, `client: refusing file "f5" from bob: 100 B more would make the files being received more than 400 B; skipped, nothing saved`) {
		t.Errorf("stderr %q", e)
	}
}
