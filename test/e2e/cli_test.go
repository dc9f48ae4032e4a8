package e2e

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gochat/chat/internal/testbin"
)

// PROTOCOL.md section 1: programs and command lines.

// helpText returns the help text of bin (its stdout for -h), after checking
// that -h exits 0 with a non-empty stdout.
func helpText(t *testing.T, bin string) string {
	t.Helper()
	r := runOnce(t, bin, timeout, "-h")
	if r.code != 0 {
		t.Fatalf("%s -h: exit code %d, want 0; stdout %s stderr %s", bin, r.code, quote(r.stdout), quote(r.stderr))
	}
	if strings.TrimSpace(r.stdout) == "" {
		t.Fatalf("%s -h: empty stdout (help goes to stdout); stderr %s", bin, quote(r.stderr))
	}
	if !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("%s -h: help text does not end with a newline: %s", bin, quote(r.stdout))
	}
	return r.stdout
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		bin   *string
		flags []string // long flags the help text must mention
		runs  [][]string
	}{
		{"server", &serverBin, []string{"--port", "--address", "--help"}, [][]string{
			{"--help"},
			{"-h", "-p", "1"}, // -h wins: prints help, exits 0, does not start
		}},
		{"client", &clientBin, []string{"--user", "--port", "--address", "--help"}, [][]string{
			{"--help"},
			{"-u", "alice", "-h"},
			{"-h", "-u", "alice", "-p", "1"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			help := helpText(t, *tc.bin)
			for _, f := range tc.flags {
				if !strings.Contains(help, f) {
					t.Errorf("%s help text does not mention %s:\n%s", tc.name, f, help)
				}
			}
			for _, args := range tc.runs {
				r := runOnce(t, *tc.bin, timeout, args...)
				if r.code != 0 || r.stdout != help {
					t.Errorf("%s %q: exit %d stdout %s; want exit 0 and the -h help text %s (stderr %s)",
						tc.name, args, r.code, quote(r.stdout), quote(help), quote(r.stderr))
				}
			}
		})
	}
}

func TestCLIClientMissingUsername(t *testing.T) {
	t.Parallel()
	help := helpText(t, clientBin)
	port := strconv.Itoa(testbin.FreePort(t))
	for _, args := range [][]string{
		{},
		{"-a", "127.0.0.1", "-p", port},
		{"--port=" + port},
	} {
		r := runOnce(t, clientBin, timeout, args...)
		if r.code != 1 {
			t.Errorf("client %q: exit code %d, want 1 (stdout %s, stderr %s)", args, r.code, quote(r.stdout), quote(r.stderr))
		}
		if want := "Missing Username.\n" + help; r.stdout != want {
			t.Errorf("client %q: stdout %s, want %s", args, quote(r.stdout), quote(want))
		}
	}
}

func TestCLIBadArguments(t *testing.T) {
	t.Parallel()
	serverHelp := helpText(t, serverBin)
	clientHelp := helpText(t, clientBin)
	port := strconv.Itoa(testbin.FreePort(t))
	cases := []struct {
		bin  string
		help string
		args []string
	}{
		{serverBin, serverHelp, []string{"--bogus"}},
		{serverBin, serverHelp, []string{"-x"}},
		{serverBin, serverHelp, []string{"-p", "abc"}},
		{serverBin, serverHelp, []string{"-pabc"}},
		{serverBin, serverHelp, []string{"--port=abc"}},
		{serverBin, serverHelp, []string{"-p", "70000"}},
		{serverBin, serverHelp, []string{"-p", "65536"}},
		{serverBin, serverHelp, []string{"-p", "-1"}},
		{serverBin, serverHelp, []string{"-p"}},
		{serverBin, serverHelp, []string{"stray"}},
		{serverBin, serverHelp, []string{"-a", "127.0.0.1", "-p", port, "stray"}},
		{serverBin, serverHelp, []string{"-a", "127.0.0.1", "-p", port, "--max-clients", "0"}},
		{serverBin, serverHelp, []string{"-a", "127.0.0.1", "-p", port, "--max-clients", "-1"}},
		{serverBin, serverHelp, []string{"-a", "127.0.0.1", "-p", port, "--max-clients", "abc"}},
		{clientBin, clientHelp, []string{"-u", "alice", "--bogus"}},
		{clientBin, clientHelp, []string{"-u", "alice", "-x"}},
		{clientBin, clientHelp, []string{"-u", "alice", "-p", "abc"}},
		{clientBin, clientHelp, []string{"-u", "alice", "--port=abc"}},
		{clientBin, clientHelp, []string{"-u", "alice", "-p", "70000"}},
		{clientBin, clientHelp, []string{"-u", "alice", "--port", "70000"}},
		{clientBin, clientHelp, []string{"-u", "alice", "-p", "-1"}},
		{clientBin, clientHelp, []string{"-u", "alice", "-p"}},
		{clientBin, clientHelp, []string{"-u", "alice", "-a", "127.0.0.1", "-p", port, "stray"}},
		{clientBin, clientHelp, []string{"stray", "-u", "alice", "-a", "127.0.0.1", "-p", port}},
	}
	for _, tc := range cases {
		r := runOnce(t, tc.bin, timeout, tc.args...)
		name := "server"
		if tc.bin == clientBin {
			name = "client"
		}
		if r.code != 1 {
			t.Errorf("%s %q: exit code %d, want 1 (stdout %s, stderr %s)", name, tc.args, r.code, quote(r.stdout), quote(r.stderr))
			continue
		}
		if r.stdout != tc.help {
			t.Errorf("%s %q: stdout %s, want exactly the help text %s (stderr %s)", name, tc.args, quote(r.stdout), quote(tc.help), quote(r.stderr))
		}
	}
}

// Short, attached, long with = and long with a space: all accepted.
func TestCLIFlagForms(t *testing.T) {
	t.Parallel()
	serverForms := map[string]func(port int) []string{
		"attached": func(p int) []string { return []string{"-a127.0.0.1", "-p" + strconv.Itoa(p)} },
		"equals":   func(p int) []string { return []string{"--address=127.0.0.1", "--port=" + strconv.Itoa(p)} },
		"spaced":   func(p int) []string { return []string{"--address", "127.0.0.1", "--port", strconv.Itoa(p)} },
		// A leading zero is base 10, as the handout's int() reads it.
		"zero": func(p int) []string { return []string{"-a", "127.0.0.1", "-p", "0" + strconv.Itoa(p)} },
	}
	for name, argsFor := range serverForms {
		t.Run("server-"+name, func(t *testing.T) {
			t.Parallel()
			srv := startServerWith(t, argsFor)
			ps := strconv.Itoa(srv.port)
			clientForms := []struct {
				user string
				args []string
			}{
				{"alice", []string{"-a127.0.0.1", "-p" + ps, "-ualice"}},
				{"bob", []string{"--address=127.0.0.1", "--port=" + ps, "--user=bob"}},
				{"carol", []string{"--address", "127.0.0.1", "--port", ps, "--user", "carol"}},
				{"dave", []string{"-u", "dave", "-p", "00" + ps, "-a", "127.0.0.1"}},
			}
			var clients []*client
			for _, cf := range clientForms {
				p := startProc(t, "client "+cf.user, clientBin, t.TempDir(), cf.args)
				srv.out.waitLine(t, "join: "+cf.user, timeout)
				clients = append(clients, &client{proc: p, name: cf.user})
			}
			syncList(t, srv, clients[0], "alice bob carol dave")
			for _, c := range clients {
				c.quit(t, srv)
			}
		})
	}
}

// Without flags the server listens on localhost:15000 and the client
// connects there.
func TestCLIDefaults(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:15000")
	if err != nil {
		t.Skipf("port 15000 is busy on this machine (%v); cannot test the defaults", err)
	}
	ln.Close()
	p := startProc(t, "server(defaults)", serverBin, t.TempDir(), nil)
	p.closeStdin()
	if !waitListening(t, p, "localhost:15000", timeout) {
		t.Fatalf("server without flags exited instead of listening on localhost:15000:\n%s", p.dump())
	}
	srv := &server{proc: p, port: 15000}
	_, home := newHome(t)
	c := &client{proc: startProc(t, "client alice", clientBin, home, []string{"-u", "alice"}), name: "alice"}
	srv.out.waitLine(t, "join: alice", timeout)
	syncList(t, srv, c, "alice")
	c.quit(t, srv)
}

func TestCLIServerCannotListen(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	r := runOnce(t, serverBin, timeout, "-a", "127.0.0.1", "-p", port)
	if r.code != 1 {
		t.Errorf("server on a taken port: exit code %d, want 1", r.code)
	}
	if strings.TrimSpace(r.stderr) == "" {
		t.Errorf("server on a taken port: nothing on stderr (it must say why)")
	}
	if r.stdout != "" {
		t.Errorf("server on a taken port: stdout %s, want nothing", quote(r.stdout))
	}
}

func TestCLIServerSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			alice := joinClient(t, srv, "alice")
			bob := rawJoin(t, srv, "bob")
			if err := srv.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			srv.expectExit(t, 0, timeout)
			// The client notices the lost server.
			alice.expectDisconnectedExit1(t, "disconnected: connection to server lost")
			bob.ExpectClosed()
		})
	}
	t.Run("idle-SIGTERM", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t)
		if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		srv.expectExit(t, 0, timeout)
		srv.out.expectEnd(t, timeout)
	})
}

// The server never reads stdin: with stdin closed (startServer closes it
// right after the start) it keeps serving.
func TestCLIServerStdinClosed(t *testing.T) {
	t.Parallel()
	srv, alice, bob := duo(t)
	alice.tell(t, srv, bob, "hi")
	alice.quit(t, srv)
	bob.quit(t, srv)
	srv.requireRunning(t)
	assertServing(t, srv)
}

// A client that cannot connect says so on stderr and exits 1, with nothing
// on stdout.
func TestCLIClientCannotConnect(t *testing.T) {
	t.Parallel()
	port := refusingPort(t) // connections there are refused
	_, home := newHome(t)
	p := startProc(t, "client alice", clientBin, home, []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-u", "alice"})
	start := time.Now()
	// It gives up after at most 10 s; allow slack for a loaded CI machine.
	p.expectExit(t, 1, 20*time.Second)
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("client took %v to give up connecting (at most 10 s)", el)
	}
	p.out.expectEnd(t, timeout)
	p.errs.waitClosed(t, timeout)
	if !p.errs.wroteAnything() {
		t.Errorf("client that cannot connect printed nothing on stderr\n%s", p.dump())
	}
}
