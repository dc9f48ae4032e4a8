package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testcert"
)

// The client asks for extensions by default (docs/PROTOCOL.md,
// "Extensions"); --plain speaks only the contract.

// Against a server that knows only the contract (it answers ext_hello
// with err_unknown_message and closes), the client joins again and speaks
// only the contract: send_message, and a file as one send_file.
func TestClientFallsBackToContract(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t)
	c := startClient(t, fs.port, "alice")
	first := fs.accept(t)
	first.Expect(protocol.ExtHello, "chunked-file file-upload not-online try-again")
	first.Write(fr("err_unknown_message", ""))
	first.NC.Close()
	rc := fs.accept(t)
	rc.Expect(protocol.Join, "alice")
	c.errs.skipTo(t, "client: server declined extensions (answered err_unknown_message); using the plain protocol", timeout)
	writeFile(t, filepath.Join(c.home, "notes.txt"), []byte("some notes"))
	c.send(t, "msg 1 bob hi")
	c.send(t, "file 1 bob notes.txt")
	c.send(t, "cancel") // no file is being sent: as any unknown input
	rc.Expect(protocol.SendMessage, "1 bob hi")
	rc.Expect(protocol.SendFile, "1 bob notes.txt some notes")
	// The client may read "cancel" after the message below arrives: wait
	// for its answer first, so that the two lines come in this order.
	c.out.waitLine(t, "incorrect user input format", timeout)
	rc.Write(fr("forward_message", "1 bob plain it is"))
	c.out.waitLine(t, "msg: bob: plain it is", timeout)
	c.send(t, "quit")
	c.expectQuitOnFake(t, rc)
}

// A --plain client with this server: the contract's frames only, a file
// as one send_file, and chat as usual.
func TestPlainClientWithOurServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := rawJoin(t, srv, "bob")
	alice := joinClient(t, srv, "alice", "--plain")
	data := randomFile(t, alice.home, "big.bin", 1<<20)
	alice.send(t, "file 2 bob ghost big.bin")
	alice.send(t, "msg 1 bob after")
	srv.out.waitLines(t, timeout, "file: alice", "file: alice to non-existent user ghost", "msg: alice")
	h, p, err := bob.ReadFrame()
	if err != nil || h.Type != protocol.ForwardFile || string(p) != "1 alice big.bin "+string(data) {
		t.Fatalf("bob got %v %v", h.Name, err)
	}
	bob.Expect(protocol.ForwardMessage, "1 alice after")
	bob.Write(fr("send_message", "1 alice hello plain"))
	alice.out.waitLine(t, "msg: bob: hello plain", timeout)
	srv.out.waitLine(t, "msg: bob", timeout)
	alice.quit(t, srv)
	// No notice of the missing user without extensions.
	for _, l := range alice.errs.remainingAll() {
		if strings.Contains(l, "ghost") {
			t.Fatalf("a --plain client was told of ghost: %q", l)
		}
	}
}

// A client without TLS against a TLS server: the session is lost, and
// stderr says the server seems to speak TLS and names --tls.
func TestClientNamesTLS(t *testing.T) {
	t.Parallel()
	cert, key := testcert.New(t).Files(t)
	srv := startServer(t, "--tls-cert", cert, "--tls-key", key)
	for _, extra := range [][]string{nil, {"--plain"}} {
		c := startClient(t, srv.port, "alice", extra...)
		c.expectDisconnectedExit1(t, "disconnected: connection to server lost")
		c.errs.skipTo(t, "client: the server at "+srv.addr()+" seems to speak TLS: start the client with --tls (and --tls-ca FILE if its certificate is self-signed)", timeout)
	}
}

// A file whose name the protocol cannot carry (a space in it) is refused
// before anything is sent, with the reason.
func TestClientRefusesFileNameWithSpace(t *testing.T) {
	t.Parallel()
	c, rc := clientOnFake(t, "alice")
	writeFile(t, filepath.Join(c.home, "my notes.txt"), []byte("x"))
	c.send(t, "file 1 bob my notes.txt")
	c.send(t, "quit")
	c.expectQuitOnFake(t, rc) // the next frame was the disconnect
	c.errs.skipTo(t, "client: cannot send my notes.txt: its name contains whitespace, which file names on the chat cannot (rename it, or link it under another name)", timeout)
}

// --join-notices: who joins and leaves, on stderr; stdout keeps the
// contract's lines alone.
func TestClientJoinNotices(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	carol := joinClient(t, srv, "carol", "--join-notices")
	bob := rawJoin(t, srv, "bob")
	carol.errs.skipTo(t, "client: bob joined", timeout)
	bob.NC.Close()
	srv.out.waitLine(t, "disconnected: bob", timeout)
	carol.errs.skipTo(t, "client: bob left", timeout)
	carol.quit(t, srv) // quitting is the only line on stdout

	// Notices are an extension: not with --plain.
	r := runOnce(t, clientBin, timeout, "--plain", "--join-notices", "-u", "x")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "gochat is a terminal chat client") || !strings.Contains(r.stderr, "--plain") {
		t.Fatalf("--plain --join-notices: status %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// The online extension with the real server (issue 23 item 9): a client
// that asked for it is told who is online right after its join; the
// server's stdout shows the joins alone (waitLine is strict: a
// request_users_list line would fail it); clients that did not ask, a
// contract client among them, get not a byte of it: the first frame each
// reads is the answer to its own list.
func TestOnlineOnlyForThoseWhoAsk(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := rawJoin(t, srv, "bob")
	alice := dialRaw(t, srv.port, "alice")
	alice.Write(fr("ext_hello", "online presence"))
	alice.Expect(protocol.ExtHello, "online presence")
	alice.Write(fr("join", "alice"))
	srv.out.waitLine(t, "join: alice", timeout)
	alice.Expect(protocol.Online, "2 alice bob")
	carol := dialRaw(t, srv.port, "carol") // extensions, but not online
	carol.Write(fr("ext_hello", "chunked-file not-online"))
	carol.Expect(protocol.ExtHello, "chunked-file not-online")
	carol.Write(fr("join", "carol"))
	srv.out.waitLine(t, "join: carol", timeout)
	alice.Expect(protocol.Presence, "joined carol")
	for _, rc := range []*chattest.Conn{bob, carol} {
		rc.Write(fr("request_users_list", ""))
		srv.out.waitLine(t, "request_users_list: "+rc.Name, timeout)
		rc.Expect(protocol.ResponseUsersList, "3 alice bob carol")
	}
}
