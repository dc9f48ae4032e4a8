package e2e

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// PROTOCOL.md sections 3 and 4: join.

func TestJoinPrinted(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	// A successful join is silent towards the client: the first thing alice
	// prints is the answer to her own list.
	syncList(t, srv, alice, "alice")
	alice.quit(t, srv)
	srv.requireRunning(t)
}

// The 11th client is refused while 10 are in (default MAX_NUM_CLIENTS).
func TestJoinServerFullDefault(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	var raws []*chattest.Conn
	for i := range 10 {
		raws = append(raws, rawJoin(t, srv, fmt.Sprintf("user%02d", i)))
	}
	// A real client as the 11th.
	clientRefused(t, srv, "late", refusedFull)

	// A raw 11th gets the frame and a clean close.
	rawRefused(t, srv, "raw11", fr("join", "raw11"), refusedFull)

	// One leaves: one more can join, and then the server is full again.
	raws[0].NC.Close()
	srv.out.waitLine(t, "disconnected: user00", timeout)
	late2 := joinClient(t, srv, "late2")
	rawRefused(t, srv, "raw12", fr("join", "raw12"), refusedFull)
	syncList(t, srv, late2, "late2 user01 user02 user03 user04 user05 user06 user07 user08 user09")
	late2.quit(t, srv)
	for i, rc := range raws[1:] {
		rc.Write(fr("disconnect", fmt.Sprintf("user%02d", i+1)))
		srv.out.waitLine(t, fmt.Sprintf("disconnected: user%02d", i+1), timeout)
		rc.ExpectClosed()
	}
	assertServing(t, srv)
}

func TestJoinMaxClientsFlag(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--max-clients", "2")
	alice := joinClient(t, srv, "alice")
	bob := joinClient(t, srv, "bob")
	clientRefused(t, srv, "carol", refusedFull)

	bob.quit(t, srv)
	carol2 := joinClient(t, srv, "carol")
	syncList(t, srv, carol2, "alice carol")
	alice.quit(t, srv)
	carol2.quit(t, srv)
	assertServing(t, srv)
}

// Rule 1 (server full) is checked before rule 2 (name taken or invalid).
func TestJoinFullCheckedBeforeName(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--max-clients", "1")
	alice := rawJoin(t, srv, "alice")
	for _, payload := range []string{"alice", "a/b", ".."} {
		rawRefused(t, srv, "late", fr("join", payload), refusedFull)
	}
	// A join header that is too long, when full: still "full" first.
	rawRefused(t, srv, "late-long", []byte("join 129 "), refusedFull)

	alice.Write(fr("disconnect", "alice"))
	srv.out.waitLine(t, "disconnected: alice", timeout)
	alice.ExpectClosed()
	bob := joinClient(t, srv, "bob")
	bob.quit(t, srv)
}

func TestJoinDuplicateName(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	clientRefused(t, srv, "alice", refusedTaken)

	// Raw duplicate: frame and clean close.
	rawRefused(t, srv, "dup", fr("join", "alice"), refusedTaken)

	// Names are case-sensitive: Alice is another user.
	capital := joinClient(t, srv, "Alice")
	syncList(t, srv, capital, "Alice alice")

	// The first alice is unaffected...
	alice.tell(t, srv, capital, "hi")
	// ...and once she has left, the name is free again.
	alice.quit(t, srv)
	again := joinClient(t, srv, "alice")
	syncList(t, srv, again, "Alice alice")
	again.quit(t, srv)
	capital.quit(t, srv)
	assertServing(t, srv)
}

// Usernames that break the rules of section 3 are refused with
// err_username_unavailable.
func TestJoinInvalidUsernames(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	invalid := map[string]string{
		"33 ASCII characters":       strings.Repeat("a", 33),
		"33 code points (66 bytes)": strings.Repeat("é", 33),
		"empty":                     "",
		"slash":                     "a/b",
		"slash alone":               "/",
		"backslash":                 `a\b`,
		"dot":                       ".",
		"dot dot":                   "..",
		"zero-width space inside":   "a\u200bb",
		"zero-width space alone":    "\u200b",
		"byte order mark":           "\ufeffbob",
		"right-to-left override":    "a\u202eb",
		"invalid UTF-8":             "a\xffb",
		"truncated UTF-8":           "ab\xc3",
		"UTF-8 surrogate":           "a\xed\xa0\x80",
		"overlong UTF-8":            "a\xc0\xafb",
		"space":                     "a b",
		"leading space":             " ab",
		"trailing space":            "ab ",
		"tab":                       "a\tb",
		"newline":                   "ab\n",
		"carriage return":           "ab\r",
		"control char":              "a\x01b",
		"NUL":                       "a\x00b",
		"DEL":                       "a\x7fb",
		"C1 control NEL":            "a\u0085b",
		"no-break space":            "a\u00a0b",
		"ideographic space":         "a\u3000b",
		"line separator":            "a\u2028b",
		"em space":                  "a\u2003b",
	}
	names := make([]string, 0, len(invalid))
	for k := range invalid {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		rc := dialRaw(t, srv.port, k)
		rc.Write(fr("join", invalid[k]))
		h, p, err := rc.ReadFrame()
		if err != nil || h.Type != protocol.ErrUsernameUnavailable || len(p) != 0 {
			t.Fatalf("join with %s (%q): want err_username_unavailable, got frame %s %q err %v\n%s", k, invalid[k], h.Name, p, err, srv.dump())
		}
		rc.ExpectClosed()
		srv.out.waitLine(t, "disconnected: username not available", timeout)
	}
	assertServing(t, srv)
}

// Unusual names that follow the rules are admitted; response_users_list
// lists them sorted by bytes.
func TestJoinValidUnusualUsernames(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--max-clients", "20")
	valid := []string{
		"x",
		strings.Repeat("a", 32),
		strings.Repeat("é", 32), // 32 code points, 64 bytes
		strings.Repeat("😀", 32), // 32 code points, 128 bytes: the largest join
		"...",
		".a",
		"a.",
		"..a",
		"Émile",
		"名前",
		"a-b_c+d@e",
		"a\u00e9",  // precomposed é
		"ae\u0301", // e + combining acute (category Mn)
		"Bob",
		"bob",
	}
	var conns []*chattest.Conn
	for _, name := range valid {
		conns = append(conns, rawJoin(t, srv, name))
	}
	last := conns[len(conns)-1]
	last.Write(fr("request_users_list", ""))
	srv.out.waitLine(t, "request_users_list: bob", timeout)
	sorted := slices.Clone(valid)
	slices.Sort(sorted) // Go sorts strings by bytes
	last.Expect(protocol.ResponseUsersList, strconv.Itoa(len(sorted))+" "+strings.Join(sorted, " "))
	assertServing(t, srv)
}

// A join header whose length is over 128 is refused from the header alone.
func TestJoinHeaderTooLong(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, header := range []string{"join 129 ", "join 1000 ", "join 4294967296 ", "join 99999999999999999999 "} {
		rawRefused(t, srv, header, []byte(header), refusedTaken) // no payload follows
	}
	// 128 bytes is allowed as a length; 128 ASCII letters are too many code
	// points, though.
	rawRefused(t, srv, "128", fr("join", strings.Repeat("a", 128)), refusedTaken)
	assertServing(t, srv)
}

// A first frame that is not a join is answered with err_unknown_message and
// closed, with nothing printed on the server's stdout.
func TestJoinFirstFrameNotJoin(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	cases := [][]byte{
		fr("request_users_list", ""),
		fr("send_message", "1 bob hi"),
		fr("send_file", "1 bob a.txt data"),
		fr("disconnect", "alice"),
		fr("response_users_list", "1 alice"),
		fr("forward_message", "1 alice hi"),
		fr("err_server_full", ""),
		fr("bogus", ""),
		fr("bogus", "abc"),
		[]byte("JOIN 5 alice"),
		[]byte("Join 5 alice"),
		[]byte(" join 5 alice"),
		[]byte("join  5 alice"),
		[]byte("join 05 alice"),
		[]byte("join abc alice"),
		[]byte("join -5 alice"),
		[]byte("join +5 alice"),
		[]byte("join 5alice"),
		[]byte("join5 alice"),
		[]byte("join\t5\talice"),
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("\x00\x01\x02\x03 4 abcd"),
		[]byte(strings.Repeat("a", 4096)), // a "type" with no end
	}
	for _, b := range cases {
		rc := dialRaw(t, srv.port, "not-join")
		rc.Write(b)
		h, p, err := rc.ReadFrame()
		if err != nil || h.Type != protocol.ErrUnknownMessage || len(p) != 0 {
			t.Fatalf("first frame %s: want err_unknown_message, got frame %s %q err %v\n%s", quote(string(b)), h.Name, p, err, srv.dump())
		}
		rc.ExpectClosed()
	}
	// Nothing was printed: the next server line is the join below.
	assertServing(t, srv)
	if r := srv.out.remaining(); len(r) != 0 {
		t.Fatalf("unexpected server output: %s", quoteAll(r))
	}
}

// Joins are admitted first come, first served in accept order.
func TestJoinFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	first := dialRaw(t, srv.port, "first")   // accepted first, silent for now
	second := dialRaw(t, srv.port, "second") // accepted second
	second.Write(fr("join", "second"))
	// Scenario timing, not a wait for a condition: the first connection
	// speaks half a second after the second one.
	<-time.After(500 * time.Millisecond)
	first.Write(fr("join", "first"))
	srv.out.waitLine(t, "join: first", timeout)
	srv.out.waitLine(t, "join: second", timeout)
	rawList(t, srv, second, "2 first second")
	assertServing(t, srv)
}

// ...but a silent earlier connection holds a later join for 2 s at most.
func TestJoinWaitCappedAtTwoSeconds(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	t0 := time.Now()
	silent := dialRaw(t, srv.port, "silent")
	bob := dialRaw(t, srv.port, "bob")
	bob.Write(fr("join", "bob"))
	srv.out.waitLine(t, "join: bob", timeout)
	el := time.Since(t0)
	if el < 1900*time.Millisecond {
		t.Errorf("join of bob admitted after %v, while an earlier connection was silent (must wait up to 2 s after that connection was accepted)", el)
	}
	if el > 5*time.Second {
		t.Errorf("join of bob admitted only after %v (an earlier silent connection may hold it 2 s at most)", el)
	}
	// The silent connection may still join.
	silent.Write(fr("join", "silent"))
	srv.out.waitLine(t, "join: silent", timeout)
	rawList(t, srv, bob, "2 bob silent")
	assertServing(t, srv)
}

// A connection that has not joined within the join timeout (30 s by
// default) is closed, silently.
func TestJoinTimeout(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	t0 := time.Now()
	idle := dialRaw(t, srv.port, "idle")
	partial := dialRaw(t, srv.port, "partial")
	partial.Write([]byte("jo"))
	for _, rc := range []*chattest.Conn{idle, partial} {
		rc.Timeout = 45*time.Second - time.Since(t0)
		h, p, err := rc.ReadFrame()
		if err == nil && h.Type == protocol.ErrUnknownMessage && len(p) == 0 {
			rc.Timeout = timeout
			h, p, err = rc.ReadFrame() // an error frame may come first
		}
		if err != io.EOF {
			t.Fatalf("raw %s: want the connection closed after the join timeout, got frame %s %q err %v", rc.Name, h.Name, p, err)
		}
		if el := time.Since(t0); el < 29*time.Second {
			t.Fatalf("raw %s: closed after %v, before the 30 s join timeout", rc.Name, el)
		}
	}
	if el := time.Since(t0); el > 40*time.Second {
		t.Errorf("unjoined connections closed only after %v (join timeout is 30 s)", el)
	}
	assertServing(t, srv)
	if r := srv.out.remaining(); len(r) != 0 {
		t.Fatalf("unexpected server output: %s", quoteAll(r))
	}
}
