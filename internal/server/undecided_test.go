package server

import (
	"fmt"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// undecidedHub cannot decide the joins of names starting with "x" (a
// cluster node whose registry has no majority).
type undecidedHub struct{ *LocalHub }

func (h undecidedHub) Join(p Peer, maxUsers int) error {
	if p.Name()[0] == 'x' {
		return fmt.Errorf("%w: no majority", ErrUnavailable)
	}
	return h.LocalHub.Join(p, maxUsers)
}

// TestUndecidedJoinAnswered: a join the hub cannot decide is answered,
// never closed without a word (issue 21): a client that asked for
// try-again gets try_again, and nothing is printed for it; a client that
// knows only the contract gets err_server_full, and the server prints
// its line. A client that asked for try-again is told join_ok when it is
// admitted, after its ext_hello answer and before anything else.
func TestUndecidedJoinAnswered(t *testing.T) {
	s := startServer(t, Config{Hub: undecidedHub{NewLocalHub()}})

	refusedJoin(t, s, "xavier", protocol.ErrServerFull)
	s.out.Wait(t, "disconnected: server full", 1)

	ext := dial(t, s.addr)
	ext.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureTryAgain}))
	ext.Expect(protocol.ExtHello, protocol.FeatureTryAgain)
	ext.Join("xena")
	h, p := ext.Frame()
	if h.Type != protocol.TryAgain {
		t.Fatalf("got %s %q, want try_again", h.Name, p)
	}
	if d, err := protocol.ParseTryAgain(p); err != nil || d <= 0 {
		t.Fatalf("try_again %q: %v %v", p, d, err)
	}
	ext.ExpectClosed()

	ok := dial(t, s.addr)
	ok.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureTryAgain}))
	ok.Expect(protocol.ExtHello, protocol.FeatureTryAgain)
	ok.Join("alice")
	ok.Expect(protocol.JoinOK, "")
	s.out.Wait(t, "join: alice", 1)
	ok.Send("hi", "alice")
	ok.Expect(protocol.ForwardMessage, "1 alice hi")

	if n := s.out.Count("disconnected: server full"); n != 1 {
		t.Fatalf("stdout has %d server full lines, want 1 (the contract client's): %q", n, s.out.Lines())
	}
}

// greetingHub is a LocalHub that sends every user a message as soon as it
// is in the hub, before Join returns: another user's message sent the
// moment the name is taken.
type greetingHub struct{ *LocalHub }

func (h greetingHub) Join(p Peer, maxUsers int) error {
	if err := h.LocalHub.Join(p, maxUsers); err != nil {
		return err
	}
	p.Send(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"eve"}, []byte("first")))
	return nil
}

// A client that asked for try-again gets join_ok before any frame sent to
// it, even one sent the moment its name is in the hub: join_ok came after
// such a message, and the client, waiting for its join's answer, dropped
// the message (CI, TestFileHostileNamesFromSender: "ignoring
// forward_message before the join's answer").
func TestJoinOKComesFirst(t *testing.T) {
	s := startServer(t, Config{Hub: greetingHub{NewLocalHub()}})
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureTryAgain}))
	c.Expect(protocol.ExtHello, protocol.FeatureTryAgain)
	c.Join("bob")
	c.Expect(protocol.JoinOK, "")
	c.Expect(protocol.ForwardMessage, "1 eve first")
}
