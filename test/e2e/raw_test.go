package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// PROTOCOL.md sections 2, 3 and 4 through raw sockets.

// A frame may arrive one byte at a time.
func TestRawFrameByteByByte(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	rc := dialRaw(t, srv.port, "alice")
	rc.WriteBytewise(fr("join", "alice"))
	srv.out.waitLine(t, "join: alice", timeout)
	rc.WriteBytewise(fr("request_users_list", ""))
	srv.out.waitLine(t, "request_users_list: alice", timeout)
	rc.Expect(protocol.ResponseUsersList, "2 alice bob")
	rc.WriteBytewise(fr("send_message", "2 alice bob slow  bytes"))
	srv.out.waitLine(t, "msg: alice", timeout)
	rc.Expect(protocol.ForwardMessage, "1 alice slow  bytes")
	bob.out.waitLine(t, "msg: alice: slow  bytes", timeout)
	rc.WriteBytewise(fr("send_file", "1 bob s.txt a\nb"))
	srv.out.waitLine(t, "file: alice", timeout)
	bob.expectReceived(t, "alice", "s.txt", []byte("a\nb"))
	rc.WriteBytewise(fr("disconnect", "alice"))
	srv.out.waitLine(t, "disconnected: alice", timeout)
	rc.ExpectClosed()
	syncList(t, srv, bob, "bob")
}

// Several frames may arrive in one read.
func TestRawSeveralFramesOneWrite(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	rc := dialRaw(t, srv.port, "alice")
	var b bytes.Buffer
	b.Write(fr("join", "alice"))
	b.Write(fr("request_users_list", ""))
	b.Write(fr("send_message", "2 bob alice one"))
	b.Write(fr("request_users_list", ""))
	b.Write(fr("send_message", "1 alice two"))
	b.Write(fr("send_file", "1 bob f.txt three"))
	rc.Write(b.Bytes())
	srv.out.waitLines(t, timeout,
		"join: alice",
		"request_users_list: alice",
		"msg: alice",
		"request_users_list: alice",
		"msg: alice",
		"file: alice",
	)
	rc.Expect(protocol.ResponseUsersList, "2 alice bob")
	rc.Expect(protocol.ForwardMessage, "1 alice one")
	rc.Expect(protocol.ResponseUsersList, "2 alice bob")
	rc.Expect(protocol.ForwardMessage, "1 alice two")
	bob.out.waitLines(t, timeout, "msg: alice: one", "file: alice: f.txt")
	expectFileContent(t, bob.home+"/bob_f.txt", []byte("three"))
	// The exact forward frames seen by a raw recipient.
	r2 := rawJoin(t, srv, "carol")
	bob.send(t, "msg 1 carol  two  spaces\tand tab ")
	srv.out.waitLine(t, "msg: bob", timeout)
	r2.Expect(protocol.ForwardMessage, "1 bob two  spaces\tand tab")
}

// checkKicked sends b on a fresh joined raw connection and requires
// err_unknown_message, a clean close and `disconnected: NAME sent unknown
// command`.
func checkKicked(t *testing.T, srv *server, what string, b []byte) {
	t.Helper()
	name := srv.freshName("m")
	rc := rawJoin(t, srv, name)
	rc.Write(b)
	h, p, err := rc.ReadFrame()
	if err != nil || h.Type != protocol.ErrUnknownMessage || len(p) != 0 {
		t.Fatalf("%s: sent %s; want err_unknown_message, got frame %s %q err %v\n%s", what, quote(string(b)), h.Name, p, err, srv.dump())
	}
	rc.ExpectClosed()
	srv.out.waitLine(t, "disconnected: "+name+" sent unknown command", timeout)
}

// After a join, a frame that breaks the framing or names no type a client
// may send is answered with err_unknown_message and a clean close, and
// the server says why; the others chat on.
func TestRawKickedAfterJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"unknown type", [][]byte{
			fr("bogus", ""),
			fr("hello", "abc"),
			fr("forward_message", "1 bob hi"),
			fr("forward_file", "1 bob a.txt x"),
			fr("response_users_list", "1 bob"),
			fr("err_unknown_message", ""),
			fr("err_server_full", ""),
			fr("err_username_unavailable", ""),
			fr("Send_message", "1 bob hi"),
			fr("SEND_MESSAGE", "1 bob hi"),
			[]byte("send-message 8 1 bob hi"),
			[]byte(strings.Repeat("x", 4096)),
		}},
		// The length field: decimal, no sign, no leading zeros, one space
		// after it.
		{"bad length", byteStrings(
			"request_users_list 00 ",
			"send_message 09 1 bob hi",
			"send_message 010 1 bob hey",
			"send_message -8 1 bob hi",
			"send_message +8 1 bob hi",
			"send_message abc ",
			"send_message 8x 1 bob hi",
			"send_message 0x8 1 bob hi",
			"send_message  8 1 bob hi",
			"send_message\t8\t1 bob hi",
			"send_message 8\t1 bob hi",
			"request_users_list 0request_users_list 0 ",
			"request_users_list  ",
			"send_message 99999999999999999999999999999 ",
			"send_message "+strings.Repeat("1", 100)+" ",
		)},
		// Headers longer than their type can carry are refused before any
		// payload.
		{"header too long", byteStrings(
			"request_users_list 1 ",
			"request_users_list 1000 ",
			"disconnect 129 ",
			"join 129 ",
			"send_message 10000000 ",
			"send_file 99999999999 ", // far over 1 GiB plus any list and name
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			bob := joinClient(t, srv, "bob")
			for _, b := range tc.frames {
				checkKicked(t, srv, tc.name, b)
			}
			syncList(t, srv, bob, "bob")
			assertServing(t, srv)
		})
	}
}

// byteStrings converts each of ss.
func byteStrings(ss ...string) [][]byte {
	b := make([][]byte, len(ss))
	for i, s := range ss {
		b[i] = []byte(s)
	}
	return b
}

func TestRawMalformedPayloads(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	names1025 := strings.TrimSpace(strings.Repeat("bob ", 1025))
	for _, p := range []string{
		"",
		"0 bob hi",
		"2 bob hi",
		"01 bob hi",
		"x bob hi",
		"-1 bob hi",
		"+1 bob hi",
		" 1 bob hi",
		"1  bob hi",
		"1 bob",
		"1 bob ",
		"1 bob hi\x01",
		"1 bob hi\nthere",
		"1 bob hi\r",
		"1 bob hi\x7f",
		"1 bob hi\u0085",
		"1 bob \xff\xfe",
		"1 bob hi\xc3",
		"1 b/ob hi",
		"1 .. hi",
		"1 bob\u200b hi",
		"1 " + strings.Repeat("b", 33) + " hi",
		"1025 " + names1025 + " hi",
		"1 bob " + strings.Repeat("x", 65537),
		"99999999999999999999999 bob hi",
	} {
		checkKicked(t, srv, "send_message payload", fr("send_message", p))
	}
	for _, p := range []string{"", "m999", "bob", "a/b"} {
		// disconnect must carry the sender's own, valid name.
		checkKicked(t, srv, "disconnect payload", fr("disconnect", p))
	}
	// Nothing reached bob meanwhile: his next line is this message.
	z := rawJoin(t, srv, "zz")
	z.Write(fr("send_message", "1 bob sync"))
	srv.out.waitLine(t, "msg: zz", timeout)
	bob.out.waitLine(t, "msg: zz: sync", timeout)
	syncList(t, srv, bob, "bob zz")
	assertServing(t, srv)
}

func TestRawSecondJoin(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	rc := rawJoin(t, srv, "alice")
	rc.Write(fr("join", "alice"))
	rc.ExpectRefused(protocol.ErrUnknownMessage)
	srv.out.waitLine(t, "disconnected: alice sent unknown command", timeout)
	checkKicked(t, srv, "second join with a new name", fr("join", "other"))
	checkKicked(t, srv, "second join with a taken name", fr("join", "bob"))
	syncList(t, srv, bob, "bob")
	assertServing(t, srv)
}

// A connection's end, by disconnect or by a broken frame, comes after
// what was queued for it: the server sends that, then (for the broken
// frame) the error frame, closes cleanly, prints, and forgets the name.
func TestRawQueuedBeforeEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		last []byte // the frame that ends the connection
		line string // the server's line for the end
		end  func(rc *chattest.Conn)
	}{
		{"disconnect", fr("disconnect", "bob"), "disconnected: bob", (*chattest.Conn).ExpectClosed},
		{"broken frame", fr("bogus", ""), "disconnected: bob sent unknown command",
			func(rc *chattest.Conn) { rc.ExpectRefused(protocol.ErrUnknownMessage) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			alice := joinClient(t, srv, "alice")
			rc := rawJoin(t, srv, "bob")
			var b bytes.Buffer
			b.Write(fr("request_users_list", ""))
			b.Write(fr("send_message", "1 bob to myself"))
			b.Write(tc.last)
			rc.Write(b.Bytes())
			srv.out.waitLines(t, timeout, "request_users_list: bob", "msg: bob", tc.line)
			rc.Expect(protocol.ResponseUsersList, "2 alice bob")
			rc.Expect(protocol.ForwardMessage, "1 bob to myself")
			tc.end(rc)
			syncList(t, srv, alice, "alice")
			alice.send(t, "msg 1 bob gone")
			srv.out.waitLines(t, timeout, "msg: alice", "msg: alice to non-existent user bob")
			assertServing(t, srv)
		})
	}
}

// A client that drops without disconnect, mid-frame or not, is removed and
// printed as `disconnected: NAME`; the others keep chatting.
func TestRawDropMidFrame(t *testing.T) {
	t.Parallel()
	srv, alice, bob := duo(t)
	for _, partial := range []string{
		"send_message 50 1 bob hel",
		"send_mes",
		"send_message 50",
		"",
		"send_file 1000 1 bob a.txt abc",
	} {
		name := srv.freshName("drop")
		rc := rawJoin(t, srv, name)
		rc.Write([]byte(partial))
		rc.NC.Close()
		if strings.HasPrefix(partial, "send_file") {
			// File content is streamed, so `file: NAME` may already have
			// been printed when the header, list and filename were in.
			if l := srv.out.nextLine(t, timeout); l != "file: "+name && l != "disconnected: "+name {
				t.Fatalf("server printed %s after a send_file cut short", quote(l))
			} else if l == "disconnected: "+name {
				continue
			}
		}
		srv.out.waitLine(t, "disconnected: "+name, timeout)
	}
	// Dropped with a reset.
	name := srv.freshName("reset")
	rc := rawJoin(t, srv, name)
	rc.Write([]byte("send_message 50 1 bob hel"))
	_ = rc.TCP().SetLinger(0)
	rc.NC.Close()
	srv.out.waitLine(t, "disconnected: "+name, timeout)

	alice.tell(t, srv, bob, "still here")
	bob.expectHomeFiles(t)
	syncList(t, srv, alice, "alice bob")
	assertServing(t, srv)
}

// A recipient that reads nothing is cut off once its send queue overflows;
// the sender never waits for it.
func TestRawSlowReaderCutOff(t *testing.T) {
	t.Parallel()
	srv, bob := withBob(t)
	rawStalled(t, srv, "slow") // never reads
	fast := rawJoin(t, srv, "fast")
	text := strings.Repeat("z", 65536)
	msg := fr("send_message", "1 slow "+text)
	sent := 0
	start := time.Now()
	// 8 MiB of queue plus the socket buffers; stop once the server has cut
	// slow off (at most 3000 frames, about 200 MB).
	for sent < 3000 && !srv.out.contains("disconnected: slow") {
		for range 16 {
			if err := fast.TryWrite(msg); err != nil {
				t.Fatalf("fast sender blocked or cut after %d frames (%v): %v\n%s", sent, time.Since(start), err, srv.dump())
			}
			sent++
		}
	}
	fast.Write(fr("send_message", "1 bob after the flood"))
	fast.Write(fr("send_message", "1 slow anyone?"))
	// Server output: one `msg: fast` per frame; `disconnected: slow` once;
	// after it, messages to slow report slow as non-existent.
	seenDisc := false
	msgs := 0
	for msgs < sent+2 || !seenDisc {
		l := srv.out.nextLine(t, 30*time.Second)
		switch {
		case l == "msg: fast":
			msgs++
		case l == "disconnected: slow" && !seenDisc:
			seenDisc = true
		case l == "msg: fast to non-existent user slow" && seenDisc:
		default:
			t.Fatalf("unexpected server line %s (after %d msg lines, cut off seen: %v)", quote(l), msgs, seenDisc)
		}
	}
	srv.out.waitLine(t, "msg: fast to non-existent user slow", timeout)
	bob.out.waitLine(t, "msg: fast: after the flood", timeout)
	t.Logf("slow reader cut off after %d frames of 64 KiB", sent)
	syncList(t, srv, bob, "bob fast")
	assertServing(t, srv)
}

// The sender name of a forward is the sender's joined name.
func TestRawSenderNameIsJoinedName(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := rawJoin(t, srv, "bob")
	mallory := rawJoin(t, srv, "mallory")
	mallory.Write(fr("send_message", "1 bob alice: hi"))
	srv.out.waitLine(t, "msg: mallory", timeout)
	bob.Expect(protocol.ForwardMessage, "1 mallory alice: hi")
	// Text that starts with spaces, or is only a space, is kept as is.
	mallory.Write(fr("send_message", "1 bob   indented"))
	mallory.Write(fr("send_message", "1 bob  "))
	mallory.Write(fr("send_message", "1 bob \t"))
	srv.out.waitLines(t, timeout, "msg: mallory", "msg: mallory", "msg: mallory")
	bob.Expect(protocol.ForwardMessage, "1 mallory   indented")
	bob.Expect(protocol.ForwardMessage, "1 mallory  ")
	bob.Expect(protocol.ForwardMessage, "1 mallory \t")
	assertServing(t, srv)
}

// Input after a broken frame is discarded by the server, so the error frame
// is not lost to a TCP reset.
func TestRawErrorNotLostToReset(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	rc := rawJoin(t, srv, "alice")
	junk := bytes.Repeat([]byte("garbage after the error "), 1<<20/24)
	rc.Write(append(fr("bogus", ""), junk...))
	rc.ExpectRefused(protocol.ErrUnknownMessage)
	srv.out.waitLine(t, "disconnected: alice sent unknown command", timeout)
	// Before a join, too.
	r2 := dialRaw(t, srv.port, "pre-join")
	r2.Write(append([]byte("hello 0 "), junk...))
	r2.ExpectRefused(protocol.ErrUnknownMessage)
	assertServing(t, srv)
}
