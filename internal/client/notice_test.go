package client

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// A server that stops costs the user the contract's line only: no
// developer's "connection ended: EOF" on stderr (issue 23 item 5).
func TestLostConnectionSaysOnlyTheContractLine(t *testing.T) {
	addr := fakeServer(t, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("bye")))
	}) // then closes: the server stopped
	s := startClient(t, addr)
	if c := s.quitAfter(t, "disconnected: connection to server lost\n"); c != ExitDisconnected {
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
		sendThenAwaitQuit(t, nc, r, protocol.AppendPresence(nil, protocol.PresenceJoined, "bob"))
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
		sendThenAwaitQuit(t, nc, r, protocol.AppendPresence(nil, protocol.PresenceJoined, "carol"))
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

// With a Users hook (a terminal's Tab completion), the client asks for
// online and presence: it reports the names online at join, then joins
// and leaves, to the hooks alone, printing nothing for them without
// --join-notices (issue 23 item 9). The online frame says the join stood:
// the join grace ends at once (the hint shows with the names known).
func TestLearnsOnlineAtJoin(t *testing.T) {
	asks := func(f []string) bool {
		return slices.Contains(f, protocol.FeatureOnline) && slices.Contains(f, protocol.FeaturePresence)
	}
	addr := fakeGrantServer(t, asks, []string{protocol.FeatureOnline, protocol.FeaturePresence}, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendOnline(nil, 3, []string{"bob", "carol", "me"}))
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceJoined, "dave"))
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceLeft, "carol"))
		nc.Write(protocol.AppendOnline(nil, 150, nil)) // the count alone: no names
		sendThenAwaitQuit(t, nc, r, protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("hi")))
	})
	events := make(chan string, 16)
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions = true
		c.cfg.JoinGrace = time.Hour // ended by the online frame, or the test times out
		c.cfg.Hooks.Users = func(names []string) { events <- "users " + strings.Join(names, " ") }
		c.cfg.Hooks.Left = func(name string) { events <- "left " + name }
		c.cfg.Hooks.Joined = func() { events <- "joined" }
	})
	want := []string{"users bob carol me", "joined", "users dave", "left carol", "users bob"}
	var got []string
	for len(got) < len(want) {
		select {
		case e := <-events:
			got = append(got, e)
		case <-time.After(waitTimeout):
			t.Fatalf("events %q, want %q", got, want)
		}
	}
	// The hint may show before or after the notices that follow the
	// online frame: they go different ways (the main loop, the receiver).
	if i := slices.Index(got, "joined"); i < 1 || !slices.Equal(slices.Delete(slices.Clone(got), i, i+1), slices.Delete(slices.Clone(want), 1, 2)) {
		t.Fatalf("events %q, want %q (the hint after the first)", got, want)
	}
	waitFor(t, s.stdout, "msg: bob: hi\n")
	s.input(t, "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
	if got, want := s.stdout.String(), "msg: bob: hi\nquitting\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if e := s.stderr.String(); e != "" {
		t.Errorf("stderr %q, want nothing", e)
	}
}

// Piped (no Users hook), the client asks for neither online nor presence:
// nothing would use them, and scripted clients cost the server no lists.
func TestPipedAsksNoOnline(t *testing.T) {
	asks := func(f []string) bool {
		return slices.Equal(f, []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline, protocol.FeatureTryAgain, protocol.FeatureResume, protocol.FeatureTaken})
	}
	addr := fakeGrantServer(t, asks, nil, func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.Disconnect)
	})
	s := startClientWith(t, addr, func(c *client) { c.cfg.Extensions = true })
	s.input(t, "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
}
