package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// PROTOCOL.md sections 3, 4 and 5: files.

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fileSHA(t *testing.T, path string) ([32]byte, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("received file: %v", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

func expectFileContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("expected file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file %s holds %s, want %s", path, quote(string(got)), quote(string(want)))
	}
}

// A 50 MB file with every byte value goes to three users (and one missing
// name); each saves it as <recipient>_<basename> with the same SHA-256.
func TestFileLargeToThree(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	rcpts := []*client{joinClient(t, srv, "bob"), joinClient(t, srv, "carol"), joinClient(t, srv, "dave")}

	data := make([]byte, 50<<20)
	for i := range 256 * 4 {
		data[i] = byte(i) // every byte value, spaces and newlines included
	}
	_, _ = rand.NewChaCha8([32]byte{1, 2}).Read(data[1024:])
	want := sha256.Sum256(data)
	writeFile(t, filepath.Join(alice.home, "payload.bin"), data)

	start := time.Now()
	alice.send(t, "file 4 bob carol dave zed payload.bin") // relative to alice's working directory
	const long = 120 * time.Second
	srv.out.waitLines(t, long, "file: alice", "file: alice to non-existent user zed")
	for _, c := range rcpts {
		c.out.waitLine(t, "file: alice: payload.bin", long)
		got, n := fileSHA(t, filepath.Join(c.home, c.name+"_payload.bin"))
		if n != int64(len(data)) || got != want {
			t.Fatalf("%s_payload.bin: %d bytes, sha256 %x; want %d bytes, sha256 %x", c.name, n, got, len(data), want)
		}
		c.expectHomeFiles(t, c.name+"_payload.bin")
	}
	t.Logf("50 MB to three recipients in %v", time.Since(start))
	// The sender got nothing and printed nothing.
	syncList(t, srv, alice, "alice bob carol dave")
	alice.expectHomeFiles(t, "payload.bin")
	for _, c := range rcpts {
		syncList(t, srv, c, "alice bob carol dave")
	}
}

func TestFileZeroLength(t *testing.T) {
	t.Parallel()
	srv, alice, bob := duo(t)
	writeFile(t, filepath.Join(alice.home, "empty.txt"), nil)
	alice.send(t, "file 1 bob empty.txt")
	srv.out.waitLine(t, "file: alice", timeout)
	bob.expectReceived(t, "alice", "empty.txt", nil)
	bob.expectHomeFiles(t, "bob_empty.txt")

	// The raw frame of a zero-length file: the filename's space, then nothing.
	rc := rawJoin(t, srv, "raw")
	alice.send(t, "file 1 raw empty.txt")
	srv.out.waitLine(t, "file: alice", timeout)
	rc.Expect(protocol.ForwardFile, "1 alice empty.txt ")
	rc.Write(fr("send_file", "1 bob none.txt "))
	srv.out.waitLine(t, "file: raw", timeout)
	bob.expectReceived(t, "raw", "none.txt", nil)
}

// The path is the rest of the line and may contain spaces; only the base
// name is sent.
func TestFilePathWithSpaces(t *testing.T) {
	t.Parallel()
	srv, alice, bob := duo(t)
	rel := filepath.Join("my docs", "two  spaces", "report.txt")
	writeFile(t, filepath.Join(alice.home, rel), []byte("relative path\n"))
	abs := filepath.Join(alice.base, "other dir", "notes.md")
	writeFile(t, abs, []byte("absolute path\n"))

	alice.send(t, "file 1 bob "+rel)
	srv.out.waitLine(t, "file: alice", timeout)
	bob.expectReceived(t, "alice", "report.txt", []byte("relative path\n"))

	alice.send(t, "file 1 bob \t  "+abs+"  \r")
	srv.out.waitLine(t, "file: alice", timeout)
	bob.expectReceived(t, "alice", "notes.md", []byte("absolute path\n"))
	bob.expectHomeFiles(t, "bob_report.txt", "bob_notes.md")
}

// Local problems are reported on stderr only; nothing is sent and the
// session goes on.
func TestFileLocalErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice", "--max-file-size", "10")
	bob := joinClient(t, srv, "bob")
	writeFile(t, filepath.Join(alice.home, "big.txt"), []byte("01234567890")) // 11 bytes
	writeFile(t, filepath.Join(alice.home, "ok.txt"), []byte("0123456789"))   // 10 bytes
	writeFile(t, filepath.Join(alice.home, "a b.txt"), []byte("x"))
	writeFile(t, filepath.Join(alice.home, "zero\u200bwidth.txt"), []byte("x"))
	long := strings.Repeat("n", 197) + ".md" // 200 bytes: allowed
	writeFile(t, filepath.Join(alice.home, long), []byte("x"))
	tooLong := strings.Repeat("n", 198) + ".md" // 201 bytes
	writeFile(t, filepath.Join(alice.home, tooLong), []byte("x"))
	if err := os.Mkdir(filepath.Join(alice.home, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	unreadable := filepath.Join(alice.home, "secret.txt")
	writeFile(t, unreadable, []byte("x"))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	_, rootCanRead := os.ReadFile(unreadable) // root reads it anyway

	cases := []string{
		"file 1 bob nope.txt",
		"file 1 bob " + filepath.Join(alice.base, "no such dir", "x.txt"),
		"file 1 bob big.txt",
		"file 1 bob adir",
		"file 1 bob a b.txt",
		"file 1 bob zero\u200bwidth.txt",
		"file 1 bob " + tooLong,
	}
	if rootCanRead != nil {
		cases = append(cases, "file 1 bob secret.txt")
	}
	for _, in := range cases {
		n := alice.errs.count()
		alice.send(t, in)
		alice.errs.waitCount(t, n+1, timeout, "report of: "+in)
	}
	// Nothing on alice's stdout, nothing at the server, nothing at bob.
	syncList(t, srv, alice, "alice bob")
	alice.send(t, "file 1 bob ok.txt")
	srv.out.waitLine(t, "file: alice", timeout)
	bob.out.waitLine(t, "file: alice: ok.txt", timeout)
	alice.send(t, "file 1 bob "+long)
	srv.out.waitLine(t, "file: alice", timeout)
	bob.out.waitLine(t, "file: alice: "+long, timeout)
	expectFileContent(t, filepath.Join(bob.home, "bob_ok.txt"), []byte("0123456789"))
	bob.expectHomeFiles(t, "bob_ok.txt", "bob_"+long)
	syncList(t, srv, alice, "alice bob")
}

// A received file replaces an older one of the same name; messages and files
// from one sender keep their order.
func TestFileReplaceAndOrder(t *testing.T) {
	t.Parallel()
	srv, alice, bob := duo(t)
	writeFile(t, filepath.Join(bob.home, "bob_note.txt"), []byte("old content, longer than the new one\n"))
	writeFile(t, filepath.Join(alice.home, "note.txt"), []byte("new\n"))
	alice.write(t, []byte("msg 1 bob before\nfile 1 bob note.txt\nmsg 1 bob after\n"))
	srv.out.waitLines(t, timeout, "msg: alice", "file: alice", "msg: alice")
	bob.out.waitLines(t, timeout, "msg: alice: before", "file: alice: note.txt", "msg: alice: after")
	expectFileContent(t, filepath.Join(bob.home, "bob_note.txt"), []byte("new\n"))
	bob.expectHomeFiles(t, "bob_note.txt")

	// Sending to yourself saves the file under your own name.
	alice.send(t, "file 2 alice bob note.txt")
	srv.out.waitLine(t, "file: alice", timeout)
	alice.out.waitLine(t, "file: alice: note.txt", timeout)
	bob.out.waitLine(t, "file: alice: note.txt", timeout)
	expectFileContent(t, filepath.Join(alice.home, "alice_note.txt"), []byte("new\n"))
	alice.expectHomeFiles(t, "note.txt", "alice_note.txt")
}

// send_file details at the server: exact forward frames, non-existent
// users, the server's --max-file-size.
func TestFileServerSide(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--max-file-size", "100")
	bob := joinClient(t, srv, "bob")
	raw := rawJoin(t, srv, "raw")
	content := strings.Repeat("\x00 \n", 33) + "z" // 100 bytes
	raw.Write(fr("send_file", "4 bob zed raw bob a.bin "+content))
	srv.out.waitLines(t, timeout, "file: raw", "file: raw to non-existent user zed")
	raw.Expect(protocol.ForwardFile, "1 raw a.bin "+content)
	bob.expectReceived(t, "raw", "a.bin", []byte(content))

	// 101 bytes is over the server's limit: malformed.
	over := dialRaw(t, srv.port, "over")
	over.Write(fr("join", "over"))
	srv.out.waitLine(t, "join: over", timeout)
	over.Write(fr("send_file", "1 bob b.bin "+content+"!"))
	over.ExpectRefused(protocol.ErrUnknownMessage)
	srv.out.waitLine(t, "disconnected: over sent unknown command", timeout)

	// A header far over what send_file can carry: refused from the header alone.
	hdr := rawJoin(t, srv, "hdr")
	hdr.Write([]byte("send_file 10000000 "))
	hdr.ExpectRefused(protocol.ErrUnknownMessage)
	srv.out.waitLine(t, "disconnected: hdr sent unknown command", timeout)

	// A real client (default limit 1 GiB) sending 101 bytes to this server.
	alice := joinClient(t, srv, "alice")
	writeFile(t, filepath.Join(alice.home, "c.bin"), []byte(content+"!"))
	alice.send(t, "file 1 bob c.bin")
	srv.out.waitLine(t, "disconnected: alice sent unknown command", timeout)
	alice.expectDisconnectedExit1(t, "disconnected: server received an unknown command")

	bob.expectHomeFiles(t, "bob_a.bin")
	syncList(t, srv, bob, "bob raw")
	assertServing(t, srv)
}

// Hostile file names from a raw sender are malformed: err_unknown_message to
// the sender, and nothing reaches the recipient's disk.
func TestFileHostileNamesFromSender(t *testing.T) {
	t.Parallel()
	srv, alice, bob := duo(t)
	hostile := hostileFilenames(bob.base + "/owned")
	for i, name := range hostile {
		m := srv.freshName("mal")
		rc := rawJoin(t, srv, m)
		rc.Write(fr("send_file", "1 bob "+name+" content "+string(rune('a'+i))))
		h, p, err := rc.ReadFrame()
		if err != nil || h.Type != protocol.ErrUnknownMessage || len(p) != 0 {
			t.Fatalf("send_file with filename %s: want err_unknown_message, got frame %s %q err %v\n%s", quote(name), h.Name, p, err, srv.dump())
		}
		rc.ExpectClosed()
		srv.out.waitLine(t, "disconnected: "+m+" sent unknown command", timeout)
	}
	// Malformed file payloads other than the name.
	for _, payload := range []string{
		"1 bob",            // no filename
		"1 bob name",       // no space after the filename
		"1 bob  content",   // empty filename
		"0 bob a.txt x",    // N = 0
		"2 bob a.txt x",    // count mismatch
		"1 b/ob a.txt x",   // bad recipient name
		"01 bob a.txt x",   // leading zero
		"1025 bob a.txt x", // N over 1024 (and too few names)
	} {
		m := srv.freshName("mal")
		rc := rawJoin(t, srv, m)
		rc.Write(fr("send_file", payload))
		rc.ExpectRefused(protocol.ErrUnknownMessage)
		srv.out.waitLine(t, "disconnected: "+m+" sent unknown command", timeout)
	}
	bob.expectHomeFiles(t)
	alice.tell(t, srv, bob, "nothing came before this")
	bob.expectHomeFiles(t)
	assertServing(t, srv)
}

// A sender that drops in the middle of a file: the recipient, sent nothing
// of the file until it is whole, keeps its session and no partial file,
// and the server goes on. (It was once cut off, its forward_file half
// sent.)
func TestFileSenderDropsMidFile(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	mal := rawJoin(t, srv, "mal")
	head := "1 bob big.bin "
	total := len(head) + 1<<20
	mal.Write([]byte("send_file " + itoa(total) + " " + head))
	mal.Write(bytes.Repeat([]byte("partial "), 100<<10/8))
	mal.NC.Close()
	// "file: mal" may or may not have been printed before the drop.
	skipped := srv.out.skipTo(t, "disconnected: mal", timeout)
	for _, l := range skipped {
		switch l {
		case "file: mal":
		default:
			t.Fatalf("unexpected server line %s before `disconnected: mal`\n%s", quote(l), srv.dump())
		}
	}
	// Bob's session goes on, and no file (and no temporary file) is
	// left once his client has ended.
	bob.send(t, "msg 1 bob still here")
	bob.out.waitLine(t, "msg: bob: still here", timeout)
	bob.closeStdin()
	code := bob.waitExit(t, timeout)
	bob.out.waitClosed(t, timeout) // every line read
	if lines := bob.out.remaining(); code != 0 || len(lines) != 1 || lines[0] != "quitting" {
		t.Fatalf("bob: exit %d with stdout %s; want `quitting` (0)\n%s", code, quoteAll(lines), bob.dump())
	}
	bob.expectHomeFiles(t)
	srv.out.waitLines(t, timeout, "msg: bob", "disconnected: bob")
	assertServing(t, srv)
}

// A recipient that takes whole frames and reads nothing holds nobody up:
// the server takes the whole file at once (it holds a file for such
// recipients until it is whole, issue 19 part 4), the others get it
// whole, and the stalled recipient is cut off once its forward_file has
// moved nothing for 30 s. (The sender was once paced to it, and waited
// those 30 s.)
func TestFileSlowRecipientCutOff(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	rawStalled(t, srv, "slow") // never reads
	alice := rawJoin(t, srv, "alice")
	carol := joinClient(t, srv, "carol")

	data := make([]byte, 64<<20) // far more than a send queue and socket buffers hold
	_, _ = rand.NewChaCha8([32]byte{3, 4}).Read(data)
	want := sha256.Sum256(data)
	head := "2 slow bob paced.bin "
	start := time.Now()
	alice.Write([]byte("send_file " + itoa(len(head)+len(data)) + " " + head))
	// The content goes in 1 MiB writes, none of which waits for slow.
	sent, sentAtCut := 0, -1
	lastProgress := time.Now()
	for sent < len(data) {
		end := min(sent+1<<20, len(data))
		if err := alice.NC.SetWriteDeadline(time.Now().Add(250 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := alice.NC.Write(data[sent:end])
		sent += n
		if n > 0 {
			lastProgress = time.Now()
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("sending the file: %v (after %d bytes, %v)\n%s", err, sent, time.Since(start), srv.dump())
		}
		if time.Since(lastProgress) > 60*time.Second {
			t.Fatalf("file transfer made no progress for 60 s (after %d bytes)\n%s", sent, srv.dump())
		}
		if sentAtCut < 0 && srv.out.contains("disconnected: slow") {
			sentAtCut = sent
		}
	}
	if sentAtCut >= 0 {
		t.Errorf("the sender wrote only %d of %d bytes before the stalled recipient was cut off: it was paced to it", sentAtCut, len(data))
	}
	// The sender's next frame is read at once, and the others are served
	// as usual while slow stalls.
	alice.Write(fr("request_users_list", ""))
	alice.Expect(protocol.ResponseUsersList, "4 alice bob carol slow")
	carol.send(t, "msg 1 carol meanwhile")
	carol.out.waitLine(t, "msg: carol: meanwhile", timeout)
	srv.out.waitUnordered(t, 60*time.Second,
		[]string{"file: alice", "request_users_list: alice", "msg: carol", "disconnected: slow"})
	cutAfter := time.Since(start)
	if cutAfter < 25*time.Second {
		t.Errorf("the stalled recipient was cut off after %v; want about 30 s without progress", cutAfter)
	}
	t.Logf("all %d bytes written; the stalled recipient was cut off after %v", len(data), cutAfter)
	bob.out.waitLine(t, "file: alice: paced.bin", 60*time.Second)
	got, n := fileSHA(t, filepath.Join(bob.home, "bob_paced.bin"))
	if got != want || n != int64(len(data)) {
		t.Fatalf("bob_paced.bin: %d bytes sha256 %x, want %d bytes sha256 %x", n, got, len(data), want)
	}
	bob.expectHomeFiles(t, "bob_paced.bin")
	// The sender was not cut off.
	rawList(t, srv, alice, "3 alice bob carol")
	t.Logf("stalled recipient cut off; transfer done after %v", time.Since(start))
	assertServing(t, srv)
}
