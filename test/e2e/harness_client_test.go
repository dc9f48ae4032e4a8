package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// ---------------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------------

type client struct {
	*proc
	name string
	base string // a fresh directory that holds only home
	home string // the client's working (download) directory
}

// newHome makes base/home and returns both.
func newHome(t testing.TB) (base, home string) {
	t.Helper()
	base = t.TempDir()
	home = filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, home
}

// startClient starts `client -a 127.0.0.1 -p PORT -u name extra...` in a
// fresh working directory.
func startClient(t testing.TB, port int, name string, extra ...string) *client {
	t.Helper()
	base, home := newHome(t)
	return startClientIn(t, base, home, port, name, extra...)
}

func startClientIn(t testing.TB, base, home string, port int, name string, extra ...string) *client {
	t.Helper()
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-u", name}, extra...)
	p := startProc(t, "client "+strconv.Quote(name), clientBin, home, args)
	return &client{proc: p, name: name, base: base, home: home}
}

// joinClient starts a client for srv and waits for the server's join line.
func joinClient(t testing.TB, srv *server, name string, extra ...string) *client {
	t.Helper()
	c := startClient(t, srv.port, name, extra...)
	srv.out.waitLine(t, "join: "+name, timeout)
	return c
}

// clientRefused starts a client joining srv as name and requires the
// refusal r: the server's line, and the client's, after which it exits 1.
func clientRefused(t testing.TB, srv *server, name string, r refusal) {
	t.Helper()
	c := startClient(t, srv.port, name)
	srv.out.waitLine(t, r.line, timeout)
	c.expectDisconnectedExit1(t, r.line)
}

// quit types quit and expects `quitting` and exit status 0; the server (if
// given) must print `disconnected: NAME`.
func (c *client) quit(t testing.TB, srv *server) {
	t.Helper()
	c.send(t, "quit")
	if srv != nil {
		srv.out.waitLine(t, "disconnected: "+c.name, timeout)
	}
	c.out.waitLine(t, "quitting", timeout)
	c.expectExit(t, 0, timeout)
	c.out.expectEnd(t, timeout)
}

// expectHomeFiles requires the client's download directory to hold exactly
// the named files (and its base directory nothing but the home directory).
func (c *client) expectHomeFiles(t testing.TB, names ...string) {
	t.Helper()
	expectDirEntries(t, c.home, names...)
	expectDirEntries(t, c.base, "home")
}

func expectDirEntries(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := slices.Clone(names)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("directory %s holds %s, want exactly %s", dir, quoteAll(got), quoteAll(want))
	}
}

// assertServing checks that srv still serves: two fresh real clients join,
// one messages the other, and both quit. The server's stdout must have
// nothing unconsumed before the first join line.
func assertServing(t testing.TB, srv *server) {
	t.Helper()
	a, b := srv.freshName("okA"), srv.freshName("okB")
	ca := joinClient(t, srv, a)
	cb := joinClient(t, srv, b)
	ca.send(t, "msg 1 "+b+" still serving")
	srv.out.waitLine(t, "msg: "+a, timeout)
	cb.out.waitLine(t, "msg: "+a+": still serving", timeout)
	ca.quit(t, srv)
	cb.quit(t, srv)
	srv.requireRunning(t)
}

// tell sends text from c to to, both joined to srv, and waits for the
// server's line and for the text on to's stdout.
func (c *client) tell(t testing.TB, srv *server, to *client, text string) {
	t.Helper()
	c.send(t, "msg 1 "+to.name+" "+text)
	srv.out.waitLine(t, "msg: "+c.name, timeout)
	to.out.waitLine(t, "msg: "+c.name+": "+text, timeout)
}

// syncList has c ask for the list and requires the next lines on c's and the
// server's stdout to be the answer: proof that nothing else was printed
// since the previous check.
func syncList(t *testing.T, srv *server, c *client, list string) {
	t.Helper()
	c.send(t, "list")
	expectList(t, srv, c, list)
}

// expectList requires the next lines on the server's and c's stdout to be
// the answer to a list c asked for.
func expectList(t *testing.T, srv *server, c *client, list string) {
	t.Helper()
	srv.out.waitLine(t, "request_users_list: "+c.name, timeout)
	c.out.waitLine(t, "list: "+list, timeout)
}

// expectReceived requires the next line on c's stdout to say that c got
// the file name from from, and the file c saved to hold want.
func (c *client) expectReceived(t *testing.T, from, name string, want []byte) {
	t.Helper()
	c.out.waitLine(t, "file: "+from+": "+name, timeout)
	expectFileContent(t, filepath.Join(c.home, c.name+"_"+name), want)
}

// expectDisconnectedExit1 checks the end of a client session that printed a
// `disconnected: ...` line while its stdin is a pipe: it must keep reading
// (and discarding) stdin, print nothing more, and exit 1 once stdin ends.
func (c *client) expectDisconnectedExit1(t testing.TB, line string) {
	t.Helper()
	c.out.waitLine(t, line, timeout)
	c.expectExit1AfterDisconnect(t)
}

// expectExit1AfterDisconnect checks the end of a client session whose
// `disconnected: ...` line has been read while its stdin is a pipe.
func (c *client) expectExit1AfterDisconnect(t testing.TB) {
	t.Helper()
	// Input after the end of the session is read and discarded: none of it
	// may print anything, and the writes must not fail (the client still
	// reads its stdin).
	c.write(t, []byte("list\nhelp\nmsg 1 "+c.name+" hello\nbogus input\n"))
	c.requireRunning(t)
	c.closeStdin()
	c.expectExit(t, 1, timeout)
	c.out.expectEnd(t, timeout)
}
