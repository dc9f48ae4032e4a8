package client

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// A server that stops costs the user the contract's line only: no
// developer's "connection ended: EOF" on stderr (issue 23 item 5).
func TestLostConnectionSaysOnlyTheContractLine(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("bye")))
	}) // then closes: the server stopped
	s := startClient(t, addr)
	waitFor(t, s.stdout, "disconnected: connection to server lost\n")
	s.stdin.Close()
	if c := s.exit(t); c != ExitDisconnected {
		t.Errorf("exit %d, want %d", c, ExitDisconnected)
	}
	if got := s.stdout.String(); got != "msg: bob: bye\ndisconnected: connection to server lost\n" {
		t.Errorf("stdout %q", got)
	}
	if e := s.stderr.String(); e != "" {
		t.Errorf("stderr %q, want nothing", e)
	}
}

// Every line the client prints on stderr starts with "client: ", so that
// none can be taken for a contract line such as "file: bob: x" (issue 23
// item 7: "file: cannot read nonexist.txt: ...").
func TestStderrLinesSayClient(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	asks := func([]string) bool { return true }
	addr := fakeGrantServer(t, asks, []string{protocol.FeaturePresence}, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceJoined, "bob"))
		expectFrame(t, r, protocol.Disconnect)
	})
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.MaxFileSize = 10
		c.cfg.Extensions, c.cfg.Presence = true, true
	})
	waitFor(t, s.stderr, "bob joined\n")
	s.input(t,
		"file 1 bob "+filepath.Join(dir, "nonexist.txt"),
		"file 1 bob "+filepath.Join(dir, "my notes.txt"),
		"file 1 bob "+dir,
		"file 1 bob "+big,
		"quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
	lines := strings.Split(strings.TrimSuffix(s.stderr.String(), "\n"), "\n")
	if len(lines) < 5 {
		t.Fatalf("stderr %q: want a line for each bad file and the notice", s.stderr.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "client: ") {
			t.Errorf("stderr line %q does not start with \"client: \"", l)
		}
	}
}

// The Joined hook (a terminal's hint) comes before the join notices that
// arrived during the join grace (issue 23 item 8).
func TestJoinNoticesAfterHint(t *testing.T) {
	asks := func([]string) bool { return true }
	addr := fakeGrantServer(t, asks, []string{protocol.FeaturePresence}, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceJoined, "carol"))
		expectFrame(t, r, protocol.Disconnect)
	})
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions, c.cfg.Presence = true, true
		c.cfg.Hooks.Joined = func() { io.WriteString(c.cfg.Stderr, "Type help for the commands\n") }
	})
	waitFor(t, s.stderr, "carol joined\n")
	s.stdin.Close()
	s.exit(t)
	if e, want := s.stderr.String(), "Type help for the commands\nclient: carol joined\n"; e != want {
		t.Errorf("stderr %q, want %q", e, want)
	}
}

// The client asks the server nothing of its own after the join (a list it
// asked for would show on the server's stdout as a request_users_list the
// user never made).
func TestAsksNoUsers(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.Disconnect) // the first frame after the join
	})
	s := startClient(t, addr)
	s.input(t, "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
}
