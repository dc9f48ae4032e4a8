package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	chatclient "github.com/gochat/chat/internal/client"
	"github.com/gochat/chat/internal/protocol"
)

// Where received files land (PROTOCOL.md section 5; --download-dir and the
// chunked-file extension of docs/PROTOCOL.md).

// With --download-dir, a received file lands there as <user>_<filename>,
// and nothing in the working directory: as one forward_file (--plain), and
// in chunks for a client with extensions (files over 256 KiB).
func TestClientDownloadDir(t *testing.T) {
	t.Parallel()
	eachFileMode(t, 1000, func(t *testing.T, tc fileMode) {
		srv := startServer(t)
		dl := t.TempDir()
		bob := joinClient(t, srv, "bob", append([]string{"--download-dir", dl}, tc.extra...)...)
		alice := joinClient(t, srv, "alice")
		data := make([]byte, tc.size)
		_, _ = rand.NewChaCha8([32]byte{byte(tc.size)}).Read(data)
		writeFile(t, filepath.Join(alice.home, "report.bin"), data)
		alice.send(t, "file 1 bob report.bin")
		srv.out.waitLine(t, "file: alice", timeout)
		bob.out.waitLine(t, "file: alice: report.bin", timeout)
		expectFileContent(t, filepath.Join(dl, "bob_report.bin"), data)
		expectDirEntries(t, dl, "bob_report.bin")
		bob.expectHomeFiles(t) // nothing in the working directory
		alice.expectHomeFiles(t, "report.bin")
		alice.quit(t, srv)
		bob.quit(t, srv)
	})
}

// fileMode is one way a file reaches a client: extra are the client's
// flags, size the file's size.
type fileMode struct {
	extra []string
	size  int
}

// eachFileMode runs f as a parallel subtest for each way a file reaches a
// client: "plain", as one forward_file (--plain) of plainSize bytes, and
// "chunked", in chunks to a client with extensions (600 KiB: chunks begin
// over 256 KiB).
func eachFileMode(t *testing.T, plainSize int, f func(t *testing.T, tc fileMode)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fileMode
	}{
		{"plain", fileMode{[]string{"--plain"}, plainSize}},
		{"chunked", fileMode{nil, 600 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f(t, tc.fileMode)
		})
	}
}

// chunkedOnFake starts a real client (which asks for extensions) against
// a fake server that accepts chunked-file only, and returns both once it
// has joined.
func chunkedOnFake(t *testing.T, name string, extra ...string) (*client, *chattest.Conn) {
	t.Helper()
	fs := newFakeServer(t)
	c := startClient(t, fs.port, name, extra...)
	rc := fs.accept(t)
	rc.Expect(protocol.ExtHello, "chunked-file file-upload not-online try-again")
	rc.Write(fr("ext_hello", "chunked-file"))
	rc.Expect(protocol.Join, name)
	return c, rc
}

// beginChunkedFile sends file 7 (big.bin from bob, 200000 bytes) and one
// 64 KiB chunk of it to a chunked client, and waits until the client holds
// the partial content in its download folder dir, under a name other than
// the file's.
func beginChunkedFile(t *testing.T, c *client, rc *chattest.Conn, dir string) {
	t.Helper()
	rc.Write(fr("file_begin", "7 bob big.bin 200000"))
	rc.Write(fr("file_chunk", "7 "+strings.Repeat("c", 65536)))
	rc.Write(fr("forward_message", "1 bob mid-file"))
	c.out.waitLine(t, "msg: bob: mid-file", timeout)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() == c.name+"_big.bin" {
		t.Fatalf("mid-file, the download folder holds %v; want one temporary file", ents)
	}
}

// file_abort: the partial file is removed, no file line is printed, and
// the session goes on.
func TestClientChunkedAbort(t *testing.T) {
	t.Parallel()
	c, rc := chunkedOnFake(t, "alice")
	beginChunkedFile(t, c, rc, c.home)
	rc.Write(fr("file_abort", "7"))
	rc.Write(fr("forward_message", "1 bob after the abort"))
	c.out.waitLine(t, "msg: bob: after the abort", timeout) // and no `file:` line before it
	c.expectHomeFiles(t)
	// Later chunks of the aborted file are ignored; another file arrives.
	rc.Write(fr("file_chunk", "7 late"))
	rc.Write(fr("file_begin", "8 bob small.txt 5"))
	rc.Write(fr("file_chunk", "8 hello"))
	rc.Write(fr("file_end", "8"))
	c.expectReceived(t, "bob", "small.txt", []byte("hello"))
	c.expectHomeFiles(t, "alice_small.txt")
	c.send(t, "quit")
	c.expectQuitOnFake(t, rc)
}

// A connection lost mid-file: the session ends, and neither the partial
// file nor anything else is left in the download folder.
func TestClientChunkedConnectionLost(t *testing.T) {
	t.Parallel()
	dl := t.TempDir()
	c, rc := chunkedOnFake(t, "alice", "--download-dir", dl)
	beginChunkedFile(t, c, rc, dl)
	rc.NC.Close()
	c.expectDisconnectedExit1(t, "disconnected: connection to server lost")
	expectDirEntries(t, dl)
	c.expectHomeFiles(t)
}

// --max-incoming-file-size: a file declared larger is refused with a
// notice and never begun on disk, as one forward_file (--plain) and in
// chunks; the session goes on (issue 23 item 11).
func TestClientMaxIncomingFileSize(t *testing.T) {
	t.Parallel()
	eachFileMode(t, 2000, func(t *testing.T, tc fileMode) {
		srv := startServer(t)
		dl := t.TempDir()
		bob := joinClient(t, srv, "bob", append([]string{"--download-dir", dl, "--max-incoming-file-size", "1K"}, tc.extra...)...)
		alice := joinClient(t, srv, "alice")
		writeFile(t, filepath.Join(alice.home, "big.bin"), make([]byte, tc.size))
		writeFile(t, filepath.Join(alice.home, "small.bin"), []byte("small"))
		alice.send(t, "file 1 bob big.bin")
		srv.out.waitLine(t, "file: alice", timeout)
		bob.errs.skipTo(t, `client: refusing file "big.bin" from alice: `+chatclient.FormatSize(int64(tc.size))+` is more than the 1.0 KiB this client takes (--max-incoming-file-size); skipped, nothing saved`, timeout)
		alice.send(t, "file 1 bob small.bin")
		srv.out.waitLine(t, "file: alice", timeout)
		alice.send(t, "msg 1 bob after")
		srv.out.waitLine(t, "msg: alice", timeout)
		bob.out.waitLine(t, "file: alice: small.bin", timeout)
		bob.out.waitLine(t, "msg: alice: after", timeout)
		expectDirEntries(t, dl, "bob_small.bin")
		alice.quit(t, srv)
		bob.quit(t, srv)
	})
}
