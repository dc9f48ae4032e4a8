package client

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

func TestEventLines(t *testing.T) {
	for _, tc := range []struct {
		ev     Event
		line   string
		stderr bool
	}{
		{Event{Kind: EventMessage, Sender: "bob", Text: "hi:  there"}, "msg: bob: hi:  there", false},
		{Event{Kind: EventFile, Sender: "bob", Text: "notes.txt"}, "file: bob: notes.txt", false},
		{Event{Kind: EventList, Names: []string{"alice", "bob"}}, "list: alice bob", false},
		{Event{Kind: EventList, Names: []string{}}, "list: ", false},
		{Event{Kind: EventDisconnected, Text: "server full"}, "disconnected: server full", false},
		{Event{Kind: EventQuitting}, "quitting", false},
		{Event{Kind: EventInputError}, "incorrect user input format", false},
		{Event{Kind: EventHelp}, HelpText, false},
		{Event{Kind: EventSent, Text: "client: sent a.txt to bob (1 B)"}, "client: sent a.txt to bob (1 B)", true},
		{Event{Kind: EventPresence, Text: "client: bob joined"}, "client: bob joined", true},
		{Event{Kind: EventDiagnostic, Text: "client: N must be at least 1"}, "client: N must be at least 1", true},
	} {
		if got := tc.ev.String(); got != tc.line {
			t.Errorf("%+v: line %q, want %q", tc.ev, got, tc.line)
		}
		if got := tc.ev.Stderr(); got != tc.stderr {
			t.Errorf("%+v: Stderr() = %v, want %v", tc.ev, got, tc.stderr)
		}
	}
}

// With Hooks.Print, the session hands over as events exactly the lines it
// would print, each saying what it is: a message whose text is the error
// line is an EventMessage (issue 24 item 3).
func TestPrintHookGetsTheLines(t *testing.T) {
	script := func(nc net.Conn, r *protocol.Reader) {
		expectFrame(t, r, protocol.RequestUsersList)
		nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("incorrect user input format")))
		sendThenAwaitQuit(t, nc, r, protocol.AppendUsersList(nil, []string{"me", "bob"}))
	}
	input := "help\nbogus\nlist\nquit\n"

	// Piped: the bytes written.
	s := startClient(t, fakeServer(t, script))
	s.input(t, "help", "bogus", "list", "quit")
	if c := s.exit(t); c != 0 {
		t.Fatalf("exit %d, want 0", c)
	}

	// With the hook: the events.
	var mu sync.Mutex
	var out, errs []Event
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, input)
		pw.Close()
	}()
	c := newClient(Config{
		User: "me", Addr: fakeServer(t, script), DownloadDir: t.TempDir(),
		Stdin: pr, Stdout: failWriter{t}, Stderr: failWriter{t},
		Hooks: Hooks{Print: func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Stderr() {
				errs = append(errs, e)
			} else {
				out = append(out, e)
			}
		}},
	})
	if code := c.run(context.Background()); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	mu.Lock()
	defer mu.Unlock()
	lines := func(evs []Event) string {
		var b []byte
		for _, e := range evs {
			b = append(append(b, e.String()...), '\n')
		}
		return string(b)
	}
	if got, want := lines(out), s.stdout.String(); got != want {
		t.Errorf("stdout events make\n%q\nprinted:\n%q", got, want)
	}
	if got, want := lines(errs), s.stderr.String(); got != want {
		t.Errorf("stderr events make\n%q\nprinted:\n%q", got, want)
	}
	kinds := func(evs []Event) []EventKind {
		var k []EventKind
		for _, e := range evs {
			k = append(k, e.Kind)
		}
		return k
	}
	if got, want := kinds(out), []EventKind{EventHelp, EventInputError, EventMessage, EventList, EventQuitting}; !slices.Equal(got, want) {
		t.Errorf("stdout kinds %v, want %v", got, want)
	}
	if got, want := kinds(errs), []EventKind{EventDiagnostic}; !slices.Equal(got, want) {
		t.Errorf("stderr kinds %v, want %v", got, want)
	}
	if m := out[2]; m.Sender != "bob" || m.Text != "incorrect user input format" {
		t.Errorf("message event %+v", m)
	}
	if l := out[3]; !slices.Equal(l.Names, []string{"bob", "me"}) {
		t.Errorf("list event names %q, want sorted [bob me]", l.Names)
	}
}

// failWriter fails the test if written: with Hooks.Print, nothing is.
type failWriter struct{ t *testing.T }

func (w failWriter) Write(p []byte) (int, error) {
	w.t.Errorf("written past Hooks.Print: %q", p)
	return len(p), nil
}

// Join and leave notices, and their pause and resumption, are
// EventPresence; a not_online notice is a diagnostic.
func TestNoticeEvents(t *testing.T) {
	asks := func([]string) bool { return true }
	addr := fakeGrantServer(t, asks, []string{protocol.FeaturePresence, protocol.FeatureNotOnline}, func(nc net.Conn, r *protocol.Reader) {
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceJoined, "carol"))
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceLeft, "carol"))
		nc.Write(protocol.AppendPresence(nil, protocol.PresencePaused, "100"))
		nc.Write(protocol.AppendPresence(nil, protocol.PresenceResumed, ""))
		sendThenAwaitQuit(t, nc, r, protocol.AppendNotOnline(nil, []string{"dave"}))
	})
	events := make(chan Event, 16)
	s := startClientWith(t, addr, func(c *client) {
		c.cfg.Extensions, c.cfg.Presence = true, true
		c.out.show = func(e Event) { events <- e }
		c.log.show = c.out.show
	})
	want := []Event{
		{Kind: EventPresence, Text: "client: carol joined"},
		{Kind: EventPresence, Text: "client: carol left"},
		{Kind: EventPresence, Text: "client: more than 100 users online: join and leave notices pause"},
		{Kind: EventPresence, Text: "client: join and leave notices resume"},
		{Kind: EventDiagnostic, Text: "client: not online: dave; they did not get it"},
	}
	for _, w := range want {
		select {
		case e := <-events:
			if e.Kind != w.Kind || e.Text != w.Text {
				t.Fatalf("event %+v, want %+v", e, w)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no event %+v after %v", w, waitTimeout)
		}
	}
	s.input(t, "quit")
	if c := s.exit(t); c != ExitOK {
		t.Errorf("exit %d", c)
	}
	if out, errs := s.stdout.String(), s.stderr.String(); out != "" || errs != "" {
		t.Errorf("written past the hook: stdout %q, stderr %q", out, errs)
	}
}
