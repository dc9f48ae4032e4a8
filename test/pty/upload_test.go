package ptytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
)

// Sending files from a terminal (docs/CLIENT.md): chat goes on while a
// file uploads, cancel and Ctrl-C stop it at once, and no line claims a
// delivery that did not happen.

// sentRow matches a row that says a file reached someone.
var sentRow = regexp.MustCompile(`^client: sent \S+ (to [^(]+ )?\(`)

// noClaim fails the test if a row of v says big.bin was sent.
func noClaim(t *testing.T, c *ptyClient, v termtest.View) {
	t.Helper()
	for _, l := range v.Transcript {
		if sentRow.MatchString(l) && !strings.Contains(l, "no receipt") {
			t.Fatalf("a row claims a delivery: %q\n%s", l, c.scr)
		}
	}
}

// startSlowAlice is startAlice with alice behind a slow uplink.
func startSlowAlice(t *testing.T, environ []string) (*server, *ptyClient) {
	t.Helper()
	srv := startServer(t)
	alice := startPTY(t, environ, args(strconv.Itoa(chattest.NewProxy(t, srv.addr, 2<<20).Port()), "alice")...)
	srv.Out.WaitLine(t, "join: alice", timeout)
	dialJoin(t, srv, "bob")
	alice.waitInput("alice", "")
	return srv, alice
}

// startSlowUpload starts alice's upload of a 64 MiB file to bob over her
// slow uplink (2 MiB/s), and waits for its progress bar.
func startSlowUpload(t *testing.T, alice *ptyClient) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(alice.dir, "big.bin"), content(64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.typeKeys("file 1 bob big.bin" + termtest.Enter)
	alice.waitScreen("the bar", func(v termtest.View) bool { return hasRow(v, barRow("sending", "big.bin", "64.0 MiB")) })
}

// Ctrl-C in the middle of a file quits at once: the file is cancelled,
// and nothing says it went.
func TestCtrlCCancelsUpload(t *testing.T) {
	t.Parallel()
	srv, alice := startSlowAlice(t, env(term, ""))
	startSlowUpload(t, alice)
	alice.typeKeys(termtest.CtrlC)
	expectExit(t, alice, 0)
	v := alice.waitScreen("the cancel, then quitting", func(v termtest.View) bool {
		return hasRow(v, regexp.MustCompile(`^client: cancelled big\.bin after .* of 64\.0 MiB; nobody got it$`)) && endsWith(v, "quitting")
	})
	noClaim(t, alice, v)
	srv.Out.WaitLine(t, "disconnected: alice", timeout)
	alice.expectTerminalRestored()
}

// While a file is on its way, chat goes on; cancel stops the file and
// the session goes on.
func TestChatFlowsDuringUpload(t *testing.T) {
	t.Parallel()
	srv, alice := startSlowAlice(t, env(term, ""))
	carol := dialJoin(t, srv, "carol")
	startSlowUpload(t, alice)
	alice.typeKeys("msg 1 carol while it uploads" + termtest.Enter)
	carol.Expect(protocol.ForwardMessage, "1 alice while it uploads")
	alice.typeKeys("cancel" + termtest.Enter)
	v := alice.waitScreen("the cancel", func(v termtest.View) bool {
		return hasRow(v, regexp.MustCompile(`^client: cancelled big\.bin after .* of 64\.0 MiB; nobody got it$`))
	})
	noClaim(t, alice, v)
	alice.typeKeys("list" + termtest.Enter)
	alice.waitRow("list: alice bob carol")
	quit(t, srv, alice)
}

// A file to a user who is not online: with extensions it is never sent,
// and the client says so; without, the line on the terminal says it went
// to the server, not to anyone.
func TestFileToNobodyOnTerminal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		row   *regexp.Regexp
	}{
		{"extensions", nil, regexp.MustCompile(`^client: not online: nobody; big\.bin was not sent$`)},
		{"plain", []string{"--plain"}, regexp.MustCompile(`^client: sent big\.bin to the server \(8\.0 MiB.*\), no receipt \(plain protocol\)$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			alice := startPTY(t, env(term, ""), args(srv.port, "alice", tc.extra...)...)
			alice.waitInput("alice", "")
			if err := os.WriteFile(filepath.Join(alice.dir, "big.bin"), content(8<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			alice.typeKeys("file 1 nobody big.bin" + termtest.Enter)
			v := alice.waitScreen("what became of the file", func(v termtest.View) bool { return hasRow(v, tc.row) })
			noClaim(t, alice, v)
			srv.Out.WaitLine(t, "file: alice to non-existent user nobody", timeout)
			quit(t, srv, alice)
		})
	}
}

// The hint about help shows once the join stands: not before a refusal.
func TestNoHintBeforeRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, user, line, max string }{
		{"server full", "alice", "disconnected: server full", "1"},
		{"name taken", "bob", "disconnected: username not available", "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServerArgs(t, "--max-clients", tc.max)
			dialJoin(t, srv, "bob")
			alice := startPTY(t, env(term, ""), args(srv.port, tc.user)...)
			expectExit(t, alice, 1)
			v := alice.waitScreen("the refusal alone", func(v termtest.View) bool { return endsWith(v, tc.line) })
			if len(v.Transcript) != 1 {
				t.Fatalf("more than the refusal on the screen:\n%s", alice.scr)
			}
			alice.expectTerminalRestored()
		})
	}
}

// The lines typed are kept across sessions, in the state folder, for the
// user alone; a piped session keeps none. A path may start with ~/.
func TestHistoryAcrossSessions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := dialJoin(t, srv, "bob")
	state, home := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "notes.txt"), []byte("from home"), 0o644); err != nil {
		t.Fatal(err)
	}
	environ := append(env(term, ""), "XDG_STATE_HOME="+state, "HOME="+home)

	first := startPTY(t, environ, args(srv.port, "alice")...)
	first.waitInput("alice", "")
	first.typeKeys("msg 1 bob first session" + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice first session")
	first.typeKeys("file 1 bob ~/notes.txt" + termtest.Enter)
	bob.Expect(protocol.ForwardFile, "1 alice notes.txt from home")
	quit(t, srv, first)

	file := filepath.Join(state, "gochat", "history")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("history file mode %v, want 0600", st.Mode().Perm())
	}
	kept, _ := os.ReadFile(file)
	if string(kept) != "msg 1 bob first session\nfile 1 bob ~/notes.txt\n" {
		t.Fatalf("history file holds %q", kept)
	}

	piped := startPipe(t, environ, false, args(srv.port, "alice")...)
	piped.send("msg 1 bob piped")
	bob.Expect(protocol.ForwardMessage, "1 alice piped")
	piped.send("quit")
	piped.waitExit()
	if again, _ := os.ReadFile(file); string(again) != string(kept) {
		t.Fatalf("a piped session wrote the history: %q", again)
	}

	second := startPTY(t, environ, args(srv.port, "alice")...)
	second.waitInput("alice", "")
	second.typeKeys(termtest.Up + termtest.Up)
	second.waitInput("alice", "msg 1 bob first session")
	second.typeKeys(termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice first session")
	quit(t, srv, second)
}
