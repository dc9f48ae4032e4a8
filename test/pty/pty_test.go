package ptytest

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal/termtest"
	"github.com/gochat/chat/internal/testbin"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from what the client prints")

const term = "xterm-256color"

var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func args(port, user string, extra ...string) []string {
	return append([]string{"-a", "127.0.0.1", "-p", port, "-u", user}, extra...)
}

// count returns how many rows of v's transcript are line.
func count(v termtest.View, line string) int {
	n := 0
	for _, l := range v.Transcript {
		if l == line {
			n++
		}
	}
	return n
}

// endsWith reports whether line is the screen's last row, with the cursor
// at the start of the row below it.
func endsWith(v termtest.View, line string) bool {
	tr := v.Transcript
	return len(tr) > 0 && tr[len(tr)-1] == line && v.CursorRow == "" && v.Col == 0
}

// plainOnFake starts alice, --plain on a terminal, against a fresh fake
// server, accepts her join and waits for her prompt.
func plainOnFake(t *testing.T) (*ptyClient, *chattest.Conn) {
	t.Helper()
	fake := newFakeServer(t)
	alice := startPTY(t, env(term, ""), args(fake.port, "alice", "--plain")...)
	conn := fake.accept(t, "alice")
	alice.waitInput("alice", "")
	return alice, conn
}

// startAlice starts the real server, alice's client in a terminal, and a
// raw connection joined as bob; it returns when alice's prompt shows.
func startAlice(t *testing.T, environ []string) (*server, *ptyClient, *chattest.Conn) {
	t.Helper()
	srv := startServer(t)
	alice := startPTY(t, environ, args(srv.port, "alice")...)
	srv.Out.WaitLine(t, "join: alice", timeout)
	bob := dialJoin(t, srv, "bob")
	alice.waitInput("alice", "")
	return srv, alice, bob
}

// quit ends alice's session with Ctrl-D and checks it ended well.
func quit(t *testing.T, srv *server, alice *ptyClient) {
	t.Helper()
	alice.typeKeys(termtest.CtrlD)
	expectExit(t, alice, 0)
	srv.Out.WaitLine(t, "disconnected: alice", timeout)
	alice.waitRow("quitting")
	alice.expectTerminalRestored()
}

func TestTypingWhileMessagesArrive(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	alice.typeKeys("msg 1 bob hel")
	alice.waitInput("alice", "msg 1 bob hel")

	var want []string
	for i := range 30 {
		text := fmt.Sprintf("message %d, sent while alice is typing", i)
		bob.Write(frame("send_message", "1 alice "+text))
		want = append(want, "msg: bob: "+text)
	}
	alice.typeKeys("lo") // she goes on typing as they arrive
	v := alice.waitScreen("the 30 messages above the whole input", func(v termtest.View) bool {
		return v.Contains(want[29]) && v.CursorRow == "alice> msg 1 bob hello"
	})
	// Exactly the hint, the messages whole and in order, the input row.
	tr := v.Transcript
	if len(tr) != 32 || !strings.HasPrefix(tr[0], "Type help") || tr[31] != "alice> msg 1 bob hello" {
		t.Fatalf("screen is not hint, 30 messages, input:\n%s", alice.scr)
	}
	for i, w := range want {
		if tr[1+i] != w {
			t.Fatalf("row %d = %q, want %q\n%s", 1+i, tr[1+i], w, alice.scr)
		}
	}
	alice.typeKeys(termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice hello")
	alice.waitInput("alice", "")
	quit(t, srv, alice)
}

func TestHistoryRecall(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	alice.typeKeys("list" + termtest.Enter)
	alice.waitRow("list: alice bob")
	alice.typeKeys("msg 1 bob one" + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice one")

	alice.typeKeys(termtest.Up)
	alice.waitInput("alice", "msg 1 bob one")
	alice.typeKeys(termtest.Up)
	alice.waitInput("alice", "list")
	alice.typeKeys(termtest.Down)
	alice.waitInput("alice", "msg 1 bob one")
	alice.typeKeys(termtest.CtrlW + "two" + termtest.CtrlA + termtest.CtrlE + termtest.Enter) // edit the recalled line
	bob.Expect(protocol.ForwardMessage, "1 alice two")

	// Ctrl-R finds the list command again.
	alice.typeKeys(termtest.CtrlR + "lis")
	alice.waitScreen("the search", func(v termtest.View) bool { return v.CursorRow == "(reverse-i-search)`lis': list" })
	alice.typeKeys(termtest.Enter)
	alice.waitScreen("a second list", func(v termtest.View) bool { return count(v, "list: alice bob") == 2 })
	alice.waitInput("alice", "")
	quit(t, srv, alice)
}

func TestTabCompletion(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	if err := os.WriteFile(filepath.Join(alice.dir, "notes.txt"), []byte("my notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.typeKeys("li\t")
	alice.waitInput("alice", "list")
	alice.typeKeys(termtest.Enter) // the list teaches alice's client bob's name
	alice.waitRow("list: alice bob")

	alice.typeKeys("m\t1 b\t")
	alice.waitInput("alice", "msg 1 bob ")
	alice.typeKeys("hi" + termtest.Enter)
	bob.Expect(protocol.ForwardMessage, "1 alice hi")

	// A sender's name is learnt too.
	carol := dialJoin(t, srv, "carol")
	carol.Write(frame("send_message", "1 alice hello"))
	alice.waitRow("msg: carol: hello")
	alice.typeKeys("msg 2 c\tb\t")
	alice.waitInput("alice", "msg 2 carol bob ")
	alice.typeKeys(termtest.CtrlW + termtest.CtrlW + "\t") // "msg 2 ": every name
	alice.waitRow("alice  bob  carol")

	// And a file path.
	alice.typeKeys(termtest.CtrlW + termtest.CtrlW + "file 1 b\tno\t")
	alice.waitInput("alice", "file 1 bob notes.txt")
	alice.typeKeys(termtest.Enter)
	bob.Expect(protocol.ForwardFile, "1 alice notes.txt my notes")
	alice.waitRow("client: sent notes.txt to bob (8 B)")
	quit(t, srv, alice)
}

// barRow matches a progress bar's row.
func barRow(verb, name, total string) *regexp.Regexp {
	return regexp.MustCompile(`^` + verb + ` ` + regexp.QuoteMeta(name) + ` \[[=> ]+\] +\d+%  [0-9.]+ [KMG]?i?B / ` +
		regexp.QuoteMeta(total) + `  [0-9.]+ [KMG]?i?B/s  [-0-9:]+ left$`)
}

func hasRow(v termtest.View, re *regexp.Regexp) bool {
	for _, l := range v.Transcript {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// content returns n bytes of a file's content (not all alike, so that a
// misplaced part shows).
func content(n int) []byte {
	block := make([]byte, 4093) // prime: blocks shift against powers of two
	for i := range block {
		block[i] = byte(i * 7)
	}
	return bytes.Repeat(block, n/len(block)+1)[:n]
}

func TestProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	t.Run("receive", func(t *testing.T) {
		t.Parallel()
		alice, conn := plainOnFake(t)

		data := content(8 << 20)
		head := "1 bob big.bin "
		conn.Write([]byte(fmt.Sprintf("forward_file %d %s", len(head)+len(data), head)))
		conn.Write(data[:1<<20])
		// The file is a quarter there: the bar shows it, above the prompt.
		bar := barRow("receiving", "big.bin", "8.0 MiB")
		alice.waitScreen("the bar", func(v termtest.View) bool {
			tr := v.Transcript
			return len(tr) >= 2 && bar.MatchString(tr[len(tr)-2]) && v.CursorRow == "alice>"
		})
		alice.typeKeys("typing meanwhile")
		alice.waitInput("alice", "typing meanwhile")
		conn.Write(data[1<<20:])
		v := alice.waitScreen("the file's line, and no bar", func(v termtest.View) bool {
			return v.Contains("file: bob: big.bin") && !hasRow(v, bar) && v.CursorRow == "alice> typing meanwhile"
		})
		if got, err := os.ReadFile(filepath.Join(alice.dir, "alice_big.bin")); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("saved file: %d bytes, %v; want the %d sent\n%s", len(got), err, len(data), v.Raw)
		}
		alice.typeKeys(termtest.CtrlC)
		expectLeft(t, alice, conn)
		alice.expectTerminalRestored()
	})
	t.Run("send", func(t *testing.T) {
		t.Parallel()
		alice, conn := plainOnFake(t)
		data := content(32 << 20)
		if err := os.WriteFile(filepath.Join(alice.dir, "big.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		alice.typeKeys("file 1 bob big.bin" + termtest.Enter)
		h := conn.Next()
		n := h.Length
		head := "1 bob big.bin "
		if h.Type != protocol.SendFile || n != int64(len(head)+len(data)) {
			t.Fatalf("header %s %d", h.Name, n)
		}
		// Read a little, then nothing until the bar shows: the client
		// waits for the network, with its bar up.
		first := make([]byte, len(head)+1<<20)
		if _, err := io.ReadFull(conn.R, first); err != nil {
			t.Fatal(err)
		}
		alice.waitScreen("the bar", func(v termtest.View) bool {
			return hasRow(v, barRow("sending", "big.bin", "32.0 MiB"))
		})
		rest := make([]byte, int(n)-len(first))
		conn.NC.SetReadDeadline(time.Now().Add(timeout))
		if _, err := io.ReadFull(conn.R, rest); err != nil {
			t.Fatal(err)
		}
		if got := append(first, rest...); string(got[:len(head)]) != head || !bytes.Equal(got[len(head):], data) {
			t.Fatal("the file arrived damaged")
		}
		alice.waitScreen("the summary, and no bar", func(v termtest.View) bool {
			return hasRow(v, regexp.MustCompile(`^client: sent big\.bin to the server \(32\.0 MiB in [0-9.]+m?s, [0-9.]+ [KMG]iB/s\), no receipt \(plain protocol\)$`)) &&
				!hasRow(v, barRow("sending", "big.bin", "32.0 MiB")) && v.CursorRow == "alice>"
		})
		alice.typeKeys(termtest.CtrlD)
		conn.Expect(protocol.Disconnect, "alice")
		conn.NC.Close()
		alice.waitExit()
	})
}

// TestNoProgressWhenPiped moves files slowly enough that a terminal would
// show bars, with the client's stdout and stderr on pipes (and stdin on a
// pipe, or on a terminal): nothing but the protocol's lines comes out.
func TestNoProgressWhenPiped(t *testing.T) {
	t.Parallel()
	for _, stdinTTY := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdin terminal %v", stdinTTY), func(t *testing.T) {
			t.Parallel()
			fake := newFakeServer(t)
			alice := startPipe(t, env(term, ""), stdinTTY, args(fake.port, "alice", "--plain")...)
			conn := fake.accept(t, "alice")

			// Receive 4 MiB in 8 parts, 100 ms apart.
			data := content(4 << 20)
			head := "1 bob big.bin "
			conn.Write([]byte(fmt.Sprintf("forward_file %d %s", len(head)+len(data), head)))
			pace := time.NewTicker(100 * time.Millisecond)
			defer pace.Stop()
			for i := range 8 {
				<-pace.C
				conn.Write(data[i<<19 : (i+1)<<19])
			}
			alice.out.waitFor(t, "client stdout", "file: bob: big.bin\n")

			// Send 32 MiB, read in 8 parts, 100 ms apart.
			if err := os.WriteFile(filepath.Join(alice.dir, "big.bin"), content(32<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			alice.send("file 1 bob big.bin")
			h := conn.Next()
			n := h.Length
			if h.Type != protocol.SendFile {
				t.Fatalf("frame %s", h.Name)
			}
			for i := range 8 {
				<-pace.C
				conn.NC.SetReadDeadline(time.Now().Add(timeout))
				part := n / 8
				if i == 7 {
					part = n - 7*(n/8)
				}
				if _, err := io.CopyN(io.Discard, conn.R, part); err != nil {
					t.Fatal(err)
				}
			}
			alice.send("quit")
			expectLeft(t, alice, conn)
			if got := string(alice.out.bytes()); got != "file: bob: big.bin\nquitting\n" {
				t.Fatalf("stdout = %q", got)
			}
			if got := alice.err.bytes(); len(got) != 0 {
				t.Fatalf("stderr = %q, want nothing", got)
			}
		})
	}
}

// TestPipedStdoutIsByteExact runs a session with stdout on a pipe, step by
// step, and compares stdout with the lines of PROTOCOL.md in
// testdata/piped_session.golden (after the help text, which must name every
// command of PROTOCOL.md section 5 with its format), with stdin on a pipe
// and on a terminal. TERM names a color terminal: no color may leak.
func TestPipedStdoutIsByteExact(t *testing.T) {
	t.Parallel()
	golden := filepath.Join("testdata", "piped_session.golden")
	for _, stdinTTY := range []bool{false, true} {
		t.Run(fmt.Sprintf("stdin terminal %v", stdinTTY), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			alice := startPipe(t, env(term, ""), stdinTTY, args(srv.port, "alice")...)
			srv.Out.WaitLine(t, "join: alice", timeout)
			bob := dialJoin(t, srv, "bob")

			alice.send("help")
			alice.send("list")
			alice.out.waitFor(t, "stdout", "list: alice bob\n")
			alice.send("bogus command")
			alice.out.waitFor(t, "stdout", "incorrect user input format\n")
			alice.send("msg 1 alice hi \t there ")
			alice.out.waitFor(t, "stdout", "msg: alice: hi \t there\n")
			bob.Write(frame("send_message", "1 alice hello alice"))
			alice.out.waitFor(t, "stdout", "msg: bob: hello alice\n")
			bob.Write(frame("send_file", "1 alice notes.txt some notes"))
			alice.out.waitFor(t, "stdout", "file: bob: notes.txt\n")
			alice.send("msg 1 bob bye")
			bob.Expect(protocol.ForwardMessage, "1 alice bye")
			alice.send("quit")
			expectExit(t, alice, 0)

			// The help text, then the lines of the session.
			help, got, _ := bytes.Cut(alice.out.bytes(), []byte("list: alice bob\n"))
			missing, err := testbin.MissingFromHelp(string(help))
			if err != nil {
				t.Fatal(err)
			}
			if len(missing) > 0 {
				t.Fatalf("the help does not name these commands of PROTOCOL.md section 5 with their format: %q\nhelp:\n%s", missing, help)
			}
			got = append([]byte("list: alice bob\n"), got...)
			if *update && !stdinTTY {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("stdout after the help:\n got %q\nwant %q", got, want)
			}
			if errs := alice.err.bytes(); bytes.Contains(errs, []byte("\x1b")) || bytes.Contains(errs, []byte("alice>")) {
				t.Fatalf("stderr has a prompt or escapes: %q", errs)
			}
		})
	}
}

func TestCtrlCAndCtrlDQuit(t *testing.T) {
	t.Parallel()
	for name, keys := range map[string]string{"Ctrl-C": "some text" + termtest.CtrlC, "Ctrl-D": termtest.CtrlD} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, alice, _ := startAlice(t, env(term, ""))
			alice.typeKeys(keys)
			expectExit(t, alice, 0)
			srv.Out.WaitLine(t, "disconnected: alice", timeout)
			// quitting is the last row: no prompt is left behind.
			alice.waitScreen("quitting, then a fresh row", func(v termtest.View) bool {
				return endsWith(v, "quitting")
			})
			alice.expectTerminalRestored()
		})
	}
}

func TestServerGoneEndsAtOnce(t *testing.T) {
	t.Parallel()
	alice, conn := plainOnFake(t)
	alice.typeKeys("half a line")
	alice.waitInput("alice", "half a line")
	conn.NC.Close()
	expectExit(t, alice, 1)
	alice.waitScreen("the disconnection, then a fresh row", func(v termtest.View) bool {
		return endsWith(v, "disconnected: connection to server lost")
	})
	alice.expectTerminalRestored()
}

// Lines are colored by what they are, not by what their text looks like
// (issue 24 item 3): the error about a path that holds "join and leave
// notices" is yellow as errors are (it was dim, as the notices are), and a
// message whose text is the error line is a message, not yellow; a file
// sent is green.
func TestColorsGoByWhatALineIs(t *testing.T) {
	t.Parallel()
	srv, alice, bob := startAlice(t, env(term, ""))
	path := "join and leave notices/x.txt"
	alice.typeKeys("file 1 bob " + path + termtest.Enter)
	alice.waitScreen("the error in yellow", func(v termtest.View) bool {
		return bytes.Contains(v.Raw, []byte("\x1b[33mclient: cannot read "+path+": "))
	})
	// And a file sent is green, as a file sent.
	if err := os.WriteFile(filepath.Join(alice.dir, "notes.txt"), []byte("my notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	alice.typeKeys("file 1 bob notes.txt" + termtest.Enter)
	bob.Expect(protocol.ForwardFile, "1 alice notes.txt my notes")
	alice.waitScreen("the file sent in green", func(v termtest.View) bool {
		return bytes.Contains(v.Raw, []byte("\x1b[32mclient: sent notes.txt to bob (8 B)"))
	})
	bob.Write(frame("send_message", "1 alice incorrect user input format"))
	bob.Write(frame("send_message", "1 alice done"))
	v := alice.waitRow("msg: bob: done")
	if !v.Contains("msg: bob: incorrect user input format") {
		t.Fatalf("no message row:\n%s", alice.scr)
	}
	if bytes.Contains(v.Raw, []byte("\x1b[33mincorrect user input format")) {
		t.Fatalf("a message colored as the error line: %q", v.Raw)
	}
	quit(t, srv, alice)
}

func TestColors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, term, noColor string
		colors, prompt      bool
	}{
		{"colors", term, "", true, true},
		{"NO_COLOR", term, "1", false, true},
		{"TERM=dumb", "dumb", "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			alice := startPTY(t, env(c.term, c.noColor), args(srv.port, "alice")...)
			srv.Out.WaitLine(t, "join: alice", timeout)
			if c.prompt {
				alice.waitInput("alice", "")
			}
			alice.typeKeys("list" + termtest.Enter)
			v := alice.waitRow("list: alice")
			if got := sgr.Match(v.Raw); got != c.colors {
				t.Fatalf("colors in the output: %v, want %v: %q", got, c.colors, v.Raw)
			}
			if got := v.ContainsText("alice>"); got != c.prompt {
				t.Fatalf("prompt shown: %v, want %v", got, c.prompt)
			}
			if c.prompt {
				alice.typeKeys(termtest.CtrlD)
			} else {
				alice.typeKeys("quit" + termtest.Enter)
			}
			expectExit(t, alice, 0)
			alice.expectTerminalRestored()
		})
	}
}
