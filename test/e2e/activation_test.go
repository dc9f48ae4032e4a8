package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Socket activation (issue 19, docs/OPERATIONS.md "Socket activation"):
// a service manager, or course/server.py, opens the server's ports and
// passes them at descriptors 3, 4, ... with LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES, as systemd does.

// passedListener opens a listening socket on 127.0.0.1 for a server to
// inherit and returns it as a file, and its port. The test's cleanup
// closes both the listener and the file.
func passedListener(t *testing.T) (*os.File, int) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().(*net.TCPAddr).Port
}

// startActivated starts the server with args and files at descriptors 3,
// 4, ..., named by names (LISTEN_FDNAMES; "-" sets none) and meant for it:
// a shell sets LISTEN_PID to its own pid and execs the server, which keeps
// that pid, as systemd sets it in the process it then execs.
func startActivated(t *testing.T, names string, files []*os.File, args ...string) *proc {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to start the server with its own pid in LISTEN_PID")
	}
	env := append(os.Environ(), "LISTEN_FDS="+strconv.Itoa(len(files)))
	if names != "-" {
		env = append(env, "LISTEN_FDNAMES="+names)
	}
	p := startProcExtra(t, "server(activated)", sh, t.TempDir(),
		append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, serverBin}, args...), nil, nil, env, files)
	p.closeStdin()
	return p
}

// A lone socket, unnamed, is the chat port: the server serves on it
// without binding a port of its own, and serves the connection that was
// made before it even started (it waited in the socket's backlog), which
// is what lets course/server.py open the port before gochatd is built.
func TestActivationServesThePassedSocket(t *testing.T) {
	t.Parallel()
	skipShort(t)
	f, port := passedListener(t)
	early := dialRaw(t, port, "early") // the server is not running yet
	early.Write(fr("join", "early"))

	p := startActivated(t, "-", []*os.File{f})
	srv := &server{proc: p, port: port}
	srv.out.waitLine(t, "join: early", timeout)
	m := srv.errs.waitAny(t, timeout, "the listening log line", func(s string) bool { return strings.Contains(s, "msg=listening") })
	if !strings.Contains(m, "addr=127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(m, "passed=true") {
		t.Fatalf("log line %q: want the passed socket's address and passed=true", m)
	}
	assertServing(t, srv)
	early.Write(fr("request_users_list", ""))
	h, list, err := early.ReadFrame()
	if err != nil || h.Type != protocol.ResponseUsersList || !strings.Contains(string(list), "early") {
		t.Fatalf("the early connection's list: %s %q, %v", h.Name, list, err)
	}
}

// With several sockets, LISTEN_FDNAMES tells them apart: chat and http
// (the web front end) are each served on their own, --http-addr unset.
func TestActivationNamedSockets(t *testing.T) {
	t.Parallel()
	skipShort(t)
	httpFile, httpPort := passedListener(t)
	chatFile, chatPort := passedListener(t)
	p := startActivated(t, "http:chat", []*os.File{httpFile, chatFile})
	srv := &server{proc: p, port: chatPort}
	rc := rawJoin(t, srv, "named")
	rc.Write(fr("request_users_list", ""))
	rc.Expect(protocol.ResponseUsersList, "1 named")

	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/")
	if err != nil {
		t.Fatalf("the web front end on the passed http socket: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<html") {
		t.Fatalf("GET / on the http socket: %d %q", resp.StatusCode, quote(string(body)))
	}
}

// Flags that contradict a passed socket are an error (exit 1, nothing
// served); flags that agree with it are fine.
func TestActivationFlagsMustAgree(t *testing.T) {
	t.Parallel()
	skipShort(t)
	for _, tc := range []struct {
		name string
		args func(port int) []string
		want *regexp.Regexp // stderr; nil: serves
	}{
		{"same port and address", func(port int) []string { return []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)} }, nil},
		{"localhost", func(port int) []string { return []string{"-a", "localhost", "--port=" + strconv.Itoa(port)} }, nil},
		{"other port", func(port int) []string { return []string{"-p", strconv.Itoa(port + 1)} },
			regexp.MustCompile(`^server: socket activation: the chat socket passed in does not agree with -p/-a localhost:\d+: it is bound to port \d+, not \d+$`)},
		{"every address", func(port int) []string { return []string{"-a", "0.0.0.0", "-p", strconv.Itoa(port)} },
			regexp.MustCompile(`^server: socket activation: the chat socket passed in does not agree with -p/-a 0\.0\.0\.0:\d+: it is bound to 127\.0\.0\.1, not 0\.0\.0\.0$`)},
		{"http without its flag's address", func(port int) []string { return []string{"--http-addr", "127.0.0.1:1"} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, port := passedListener(t)
			names := "-"
			if strings.HasPrefix(tc.name, "http") {
				names = "http"
				tc.want = regexp.MustCompile(`^server: socket activation: the http socket passed in does not agree with --http-addr 127\.0\.0\.1:1: it is bound to port \d+, not 1$`)
			}
			p := startActivated(t, names, []*os.File{f}, tc.args(port)...)
			if tc.want == nil {
				rawJoin(t, &server{proc: p, port: port}, "agreed")
				return
			}
			p.expectExit(t, 1, timeout)
			p.errs.waitClosed(t, timeout)
			if errs := p.errs.remainingAll(); len(errs) != 1 || !tc.want.MatchString(errs[0]) {
				t.Fatalf("stderr %s, want one line matching %s", quoteAll(errs), tc.want)
			}
			if p.out.wroteAnything() {
				t.Fatalf("stdout: %s", quoteAll(p.out.remainingAll()))
			}
		})
	}
}

// What is passed must be a listening socket: a file is refused, and so are
// sockets whose names say nothing when there are several.
func TestActivationRefusesWhatItCannotServe(t *testing.T) {
	t.Parallel()
	skipShort(t)
	file, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	a, _ := passedListener(t)
	b, _ := passedListener(t)
	for _, tc := range []struct {
		name  string
		names string
		files []*os.File
		want  string
	}{
		{"a file", "-", []*os.File{file}, "server: socket activation: the chat socket (descriptor 3): not a socket: socket operation on non-socket"},
		{"two unnamed", "-", []*os.File{a, b}, `server: socket activation: socket 3 is named "": with several sockets, each must be named chat, http, metrics (LISTEN_FDNAMES; FileDescriptorName= in systemd)`},
		{"names miscounted", "chat", []*os.File{a, b}, `server: socket activation: LISTEN_FDNAMES="chat" names 1 sockets, LISTEN_FDS=2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startActivated(t, tc.names, tc.files)
			p.expectExit(t, 1, timeout)
			p.errs.waitClosed(t, timeout)
			if errs := p.errs.remainingAll(); len(errs) != 1 || errs[0] != tc.want {
				t.Fatalf("stderr %s, want %s", quoteAll(errs), quote(tc.want))
			}
		})
	}
}

// A client started before its server is listening connects once the
// server listens, within a second (a course harness starts the clients
// 10 ms after the server; issue 19): a refused connection is tried again.
// The port is a socket bound but not listening (refused), which listens
// only 100 ms after the client started, and is then served by a server
// that takes it by socket activation.
func TestClientWaitsForAStartingServer(t *testing.T) {
	t.Parallel()
	skipShort(t)
	fd, port := boundSocket(t)
	c := startClient(t, port, "early")
	time.Sleep(100 * time.Millisecond) // the harness's shape: the server comes later
	if err := syscall.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	dup, err := syscall.Dup(fd) // boundSocket's cleanup closes fd itself
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(dup), "bound")
	defer f.Close()
	p := startActivated(t, "-", []*os.File{f})
	srv := &server{proc: p, port: port}
	srv.out.waitLine(t, "join: early", timeout)
	c.send(t, "list")
	c.out.waitLine(t, "list: early", timeout)
	srv.out.waitLine(t, "request_users_list: early", timeout)
	c.quit(t, srv)
}
