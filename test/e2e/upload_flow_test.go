package e2e

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// Files sent with the file-upload extension (docs/PROTOCOL.md, the
// client's default), through the real programs.

// randomFile writes n random bytes to dir/name and returns them.
func randomFile(t *testing.T, dir, name string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8)}).Read(data)
	writeFile(t, filepath.Join(dir, name), data)
	return data
}

// A file to a user who is not online is never uploaded: the client
// learns so before it sends any of it, and says so; the server prints the
// lines of send_file.
func TestUploadToNobodyIsNotSent(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	relay := chattest.NewProxy(t, srv.addr(), 0)
	alice := startClient(t, relay.Port(), "alice")
	srv.out.waitLine(t, "join: alice", timeout)
	randomFile(t, alice.home, "big.bin", 50<<20)
	alice.send(t, "file 1 nobody big.bin")
	// The list overtakes the file (a piped list goes at once, docs/CLIENT.md),
	// so the server may print it first: wait for the file's lines before it.
	srv.out.waitLines(t, timeout, "file: alice", "file: alice to non-existent user nobody")
	syncList(t, srv, alice, "alice")
	alice.errs.skipTo(t, "client: not online: nobody; big.bin was not sent", timeout)
	alice.quit(t, srv)
	if n := relay.Up(); n > 64<<10 {
		t.Fatalf("the client sent %d bytes for a file to nobody", n)
	}
}

// SIGINT in the middle of a file to a user who never reads ends the
// client at once, with or without extensions: it does not wait for the
// server to give up on that user, and nothing claims the file went.
func TestUploadSignalMidFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, note string
		extra      []string
	}{
		{"extensions", "client: cancelled big.bin", nil},
		{"plain", "client: cut the connection to stop sending big.bin (plain protocol); nobody gets it", []string{"--plain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// bob takes chunked files and never reads, and alice's
			// uplink is slow (2 MiB/s): the file is still on its way
			// when the signal comes. (bob alone no longer holds it up:
			// the server holds the rest for a recipient that falls
			// behind, so that nobody paces its sender; issue 19.)
			srv := startServer(t, "--stall-timeout", "3s")
			bob := dialRaw(t, srv.port, "bob") // never reads
			bob.TCP().SetReadBuffer(4 << 10)
			bob.Write(fr("ext_hello", "chunked-file"))
			bob.Expect(protocol.ExtHello, "chunked-file")
			bob.Write(fr("join", "bob"))
			srv.out.waitLine(t, "join: bob", timeout)
			alice := startClient(t, chattest.NewProxy(t, srv.addr(), 2<<20).Port(), "alice", tc.extra...)
			srv.out.waitLine(t, "join: alice", timeout)
			randomFile(t, alice.home, "big.bin", 64<<20)
			alice.send(t, "file 1 bob big.bin")
			srv.out.waitLine(t, "file: alice", timeout) // the file is on its way
			if err := alice.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			alice.out.waitLine(t, "quitting", timeout)
			alice.expectExit(t, 0, timeout)
			alice.out.expectEnd(t, timeout)
			alice.errs.waitClosed(t, timeout)
			if !strings.Contains(strings.Join(alice.errs.remainingAll(), "\n"), tc.note) {
				t.Fatalf("stderr lacks %q\n%s", tc.note, alice.dump())
			}
			// bob, who takes chunked files, gets a file_abort (which his
			// socket's buffers may still take: he is not necessarily cut
			// off).
			srv.out.waitLine(t, "disconnected: alice", timeout)
		})
	}
}

// Who got a file: the sender is told of a recipient that never had it all
// (cut off for not reading), the others get it whole, and with piped
// input the next line goes only once the file has been delivered.
func TestUploadOutcomePerRecipient(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--stall-timeout", "2s")
	rawStalled(t, srv, "bob") // never reads
	carol := joinClient(t, srv, "carol")
	alice := joinClient(t, srv, "alice")
	data := randomFile(t, alice.home, "big.bin", 20<<20)
	alice.send(t, "file 3 bob carol ghost big.bin")
	alice.send(t, "msg 1 carol done")
	srv.out.waitLines(t, timeout, "file: alice", "file: alice to non-existent user ghost")
	carol.out.waitLines(t, 3*timeout, "file: alice: big.bin", "msg: alice: done")
	expectFileContent(t, filepath.Join(carol.home, "carol_big.bin"), data)
	// alice's message waited for the file's outcome, which came when bob
	// was cut off; bob's line and hers come from two connections, in
	// either order.
	srv.out.waitUnordered(t, timeout, []string{"disconnected: bob", "msg: alice"})
	alice.errs.skipTo(t, "client: not online: ghost; big.bin goes to the others only", timeout)
	alice.errs.skipTo(t, "client: big.bin did not reach bob (they left or were cut off before they had it all)", timeout)
	alice.quit(t, srv)
	carol.quit(t, srv)
}

// A recipient that speaks only the contract gets one forward_file, and
// the sender's next message after it.
func TestUploadToPlainRecipient(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := rawJoin(t, srv, "bob")
	alice := joinClient(t, srv, "alice")
	data := randomFile(t, alice.home, "big.bin", 3<<20)
	alice.send(t, "file 1 bob big.bin")
	alice.send(t, "msg 1 bob after")
	h, p, err := bob.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if h.Type != protocol.ForwardFile || !bytes.Equal(p, append([]byte("1 alice big.bin "), data...)) {
		t.Fatalf("bob got %s of %d bytes, want the whole file", h.Name, len(p))
	}
	bob.Expect(protocol.ForwardMessage, "1 alice after")
	srv.out.waitLines(t, timeout, "file: alice", "msg: alice")
	alice.quit(t, srv)
}
