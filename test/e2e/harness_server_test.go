package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gochat/chat/internal/testbin"
)

// ---------------------------------------------------------------------------
// Servers.
// ---------------------------------------------------------------------------

type server struct {
	*proc
	port  int
	names atomic.Int64 // for fresh user names
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// freshName returns a user name not used before on this server.
func (s *server) freshName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, s.names.Add(1))
}

// refusingPort returns a port on 127.0.0.1 where connections are refused:
// a socket is bound to it (so nobody else gets it) but does not listen.
func refusingPort(t testing.TB) int {
	t.Helper()
	_, port := boundSocket(t)
	return port
}

// boundSocket returns a TCP socket bound to a free port of 127.0.0.1, and
// the port; the test's cleanup closes it.
func boundSocket(t testing.TB) (fd, port int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*syscall.SockaddrInet4).Port
}

// listensOn reports whether process pid owns a TCP socket listening on
// port (any local address), from /proc. ok is false where /proc cannot tell.
func listensOn(pid, port int) (owned, ok bool) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		ok = true
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" {
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			if p, err := strconv.ParseUint(fields[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	if !ok || len(inodes) == 0 {
		return false, ok
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, false
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && inodes[l] {
			return true, true
		}
	}
	return false, true
}

// startServer starts `server -a 127.0.0.1 -p PORT extra...` on a free port
// and waits until it accepts TCP connections.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServerWith(t, func(port int) []string {
		return append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, extra...)
	})
}

// startServerWith is startServer with the whole argument list made by
// argsFor. If the server exits before it listens (most likely because another
// process took the port in between), it is retried on another port a few
// times.
func startServerWith(t testing.TB, argsFor func(port int) []string) *server {
	t.Helper()
	return startServerFiles(t, nil, argsFor)
}

// startServerStdout is startServer with stdout on the given file, which
// the caller keeps; srv.out then holds nothing.
func startServerStdout(t testing.TB, stdout *os.File, extra ...string) *server {
	t.Helper()
	return startServerFiles(t, stdout, func(port int) []string {
		return append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}, extra...)
	})
}

// startServerFiles starts the server with the arguments argsFor makes and
// stdout on the given file (nil: captured), retrying on another port if it
// exits before it listens.
func startServerFiles(t testing.TB, stdout *os.File, argsFor func(port int) []string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := testbin.FreePort(t)
		p := startProcFiles(t, fmt.Sprintf("server(:%d)", port), serverBin, t.TempDir(), argsFor(port), nil, stdout)
		p.closeStdin() // the server never reads its stdin
		if waitListening(t, p, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout) {
			return &server{proc: p, port: port}
		}
		if attempt < 5 {
			t.Logf("server attempt %d on port %d exited before listening; retrying:\n%s", attempt, port, p.dump())
			continue
		}
		t.Fatalf("server never listened:\n%s", p.dump())
	}
}

// waitListening waits until p listens on port (checked in /proc where
// possible, so that another test's listener on the same port is not taken
// for it) and a TCP connect to addr succeeds: true; or until p exits: false.
// It fails the test at the deadline.
func waitListening(t testing.TB, p *proc, addr string, d time.Duration) bool {
	t.Helper()
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		owned, ok := listensOn(p.cmd.Process.Pid, port)
		var err error
		if owned || !ok {
			var c net.Conn
			c, err = net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				if !p.exited() {
					return true
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not listening on %s after %v (owned: %v, dial: %v)\n%s", p.label, addr, d, owned, err, p.dump())
		}
		select {
		case <-p.done:
			return false
		case <-tick.C: // check again
		}
	}
}
