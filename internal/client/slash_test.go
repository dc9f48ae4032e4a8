package client

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// A file name with a character that looks like / or \ is refused as one
// with / is: never saved as "me_∕..∕..∕etc∕passwd" (issue 23 item 12).
func TestSlashLookalikeNamesRefused(t *testing.T) {
	names := []string{"∕..∕..∕etc∕passwd", "a⁄b", "a⧸b", "a／b", "a＼b", "a∖b", "᜵x", "a\u0338b"}
	forEachDelivery(t, func(t *testing.T, d delivery) {
		addr := d.serve(t, func(nc net.Conn, r *protocol.Reader) {
			var b []byte
			for _, name := range names {
				b = append(b, fileFrames(d.chunked, name, []byte("root:x:0:0"))...)
			}
			b = append(b, fileFrames(d.chunked, "ノート.txt", []byte("fine"))...) // a Katakana ノ is a letter
			b = protocol.AppendMessage(b, protocol.ForwardMessage, []string{"bob"}, []byte("after"))
			sendThenAwaitQuit(t, nc, r, b)
		})
		s := d.start(t, addr)
		s.quitAfter(t, "msg: bob: after\n")
		if got, want := s.stdout.String(), "file: bob: ノート.txt\nmsg: bob: after\nquitting\n"; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
		s.expectFiles(t, "me_ノート.txt")
		e := s.stderr.String()
		for _, name := range names {
			if !strings.Contains(e, "client: refusing file "+quote(name)+" from bob: its name contains ") {
				t.Errorf("stderr does not refuse %q:\n%s", name, e)
			}
		}
	})
}

// quote is %q, as the refusal prints a name.
func quote(s string) string { return fmt.Sprintf("%q", s) }

// The client refuses to send such a file too, before anything is sent.
func TestSlashLookalikeNotSent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "∕etc∕passwd")
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.Disconnect) // nothing before it
	})
	s := startClient(t, addr)
	s.input(t, "file 1 bob "+path, "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
	want := "client: cannot send " + path + ": its name contains '∕' (U+2215), which looks like /, which file names on the chat cannot (rename it, or link it under another name)\n"
	if e := s.stderr.String(); e != want {
		t.Errorf("stderr %q, want %q", e, want)
	}
}
