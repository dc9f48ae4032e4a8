// Package activation takes the listening sockets that a service manager
// (systemd, or course/server.py) opened for the server and passed to it
// under systemd's socket activation protocol (sd_listen_fds(3)): the
// sockets are file descriptors 3, 4, ...; LISTEN_FDS says how many,
// LISTEN_PID which process they are for, and LISTEN_FDNAMES, a
// colon-separated list, what each is.
//
// A socket the manager opened exists before the server has started, so no
// client that connects while the server is still starting (or being built)
// is refused: its connection waits in the socket's backlog (issue 19).
package activation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// firstFD is the descriptor of the first passed socket (SD_LISTEN_FDS_START).
const firstFD = 3

// maxFDs bounds LISTEN_FDS: the server takes at most a few sockets, and a
// huge count is a mistake, not a request to close a million descriptors.
const maxFDs = 64

// The protocol's environment variables.
const (
	envPID   = "LISTEN_PID"
	envFDs   = "LISTEN_FDS"
	envNames = "LISTEN_FDNAMES"
)

// Socket is one passed file descriptor and the name LISTEN_FDNAMES gives
// it ("" when the variable is not set).
type Socket struct {
	FD   int
	Name string
}

// Parse returns the sockets that the protocol's variables, as lookupEnv
// (os.LookupEnv) finds them, pass to the process pid: none when LISTEN_PID
// is unset or names another process (the sockets are not ours), or when
// LISTEN_FDS is unset or 0. A LISTEN_PID or LISTEN_FDS that is not a
// number, or a LISTEN_FDNAMES with another count of names than LISTEN_FDS,
// is an error (sd_listen_fds_with_names(3) refuses it too).
func Parse(pid int, lookupEnv func(string) (string, bool)) ([]Socket, error) {
	pidVar, ok := lookupEnv(envPID)
	if !ok {
		return nil, nil
	}
	p, err := strconv.Atoi(pidVar)
	if err != nil || p <= 0 {
		return nil, fmt.Errorf("%s=%q is not a process id", envPID, pidVar)
	}
	if p != pid {
		return nil, nil
	}
	fdsVar, ok := lookupEnv(envFDs)
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(fdsVar)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s=%q is not a count of descriptors", envFDs, fdsVar)
	}
	if n > maxFDs {
		return nil, fmt.Errorf("%s=%d: more than %d sockets", envFDs, n, maxFDs)
	}
	if n == 0 {
		return nil, nil
	}
	names := make([]string, n)
	if v, ok := lookupEnv(envNames); ok {
		names = strings.Split(v, ":")
		if len(names) != n {
			return nil, fmt.Errorf("%s=%q names %d sockets, %s=%d", envNames, v, len(names), envFDs, n)
		}
	}
	socks := make([]Socket, n)
	for i := range socks {
		socks[i] = Socket{FD: firstFD + i, Name: names[i]}
	}
	return socks, nil
}

// Assign gives each socket one of roles (such as "chat", "http",
// "metrics"): the role it is named after. A lone socket with another name
// (none, "unknown", or its systemd unit's name, which is what systemd
// passes when the unit sets no FileDescriptorName=) takes roles[0]. With
// several sockets each must be named after a role, and no role twice.
func Assign(socks []Socket, roles ...string) (map[string]Socket, error) {
	out := make(map[string]Socket, len(socks))
	for _, s := range socks {
		role := s.Name
		if !slices.Contains(roles, role) {
			if len(socks) > 1 {
				return nil, fmt.Errorf("socket %d is named %q: with several sockets, each must be named %s (LISTEN_FDNAMES; FileDescriptorName= in systemd)", s.FD, s.Name, strings.Join(roles, ", "))
			}
			role = roles[0]
		}
		if _, dup := out[role]; dup {
			return nil, fmt.Errorf("two sockets are named %q", role)
		}
		out[role] = s
	}
	return out, nil
}

// Listeners returns the listening TCP sockets passed to this process, by
// role (see Assign), or nil when none were passed. Whatever the variables
// said, it unsets them, so that no program the server starts takes the
// sockets for its own (sd_listen_fds(3) with unset_environment), and marks
// every passed descriptor close-on-exec. On an error it closes every
// passed descriptor: a socket the server cannot use is of no use open.
func Listeners(roles ...string) (map[string]net.Listener, error) {
	socks, err := Parse(os.Getpid(), os.LookupEnv)
	for _, k := range []string{envPID, envFDs, envNames} {
		os.Unsetenv(k)
	}
	if err != nil || len(socks) == 0 {
		return nil, err
	}
	// Each descriptor is held by an *os.File from here on, so that it is
	// closed exactly once (a File's finalizer would close a number that
	// unix.Close had already given back, and perhaps reused).
	files := make([]*os.File, len(socks))
	for i, s := range socks {
		syscall.CloseOnExec(s.FD)
		files[i] = os.NewFile(uintptr(s.FD), "listen-fd-"+strconv.Itoa(s.FD))
	}
	defer func() {
		for _, f := range files {
			f.Close() // net.FileListener took a duplicate of each it used
		}
	}()
	byRole, err := Assign(socks, roles...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]net.Listener, len(byRole))
	for role, s := range byRole {
		ln, err := listener(files[s.FD-firstFD])
		if err != nil {
			for _, l := range out {
				l.Close()
			}
			return nil, fmt.Errorf("the %s socket (descriptor %d): %w", role, s.FD, err)
		}
		out[role] = ln
	}
	return out, nil
}

// listener returns f as a TCP listener, if it is a listening TCP socket.
func listener(f *os.File) (net.Listener, error) {
	rc, err := f.SyscallConn() // not f.Fd(), which would make the socket blocking
	if err != nil {
		return nil, err
	}
	var v int
	if cerr := rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("not a socket: %w", err)
	}
	if v == 0 {
		return nil, errors.New("not a listening socket")
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		ln.Close()
		return nil, fmt.Errorf("a %s socket, not TCP", ln.Addr().Network())
	}
	return ln, nil
}

// Agree reports whether addr, a host:port from the command line, names
// the address ln is bound to, as a listener opened on addr would be: the
// same port (port 0 agrees with any), and a host that resolves to ln's IP
// address (an unspecified address, such as "" or 0.0.0.0, agrees only
// with another). It returns an error saying how they differ otherwise.
// The server takes a passed socket over its own flags, but only when they
// do not contradict it: a -p that names another port than the socket's is
// more likely a mistake than a wish.
func Agree(ctx context.Context, ln net.Listener, addr string) error {
	bound, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("%s is not a TCP address", ln.Addr())
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := net.DefaultResolver.LookupPort(ctx, "tcp", portStr)
	if err != nil {
		return err
	}
	if port != 0 && port != bound.Port {
		return fmt.Errorf("it is bound to port %d, not %d", bound.Port, port)
	}
	if host == "" || bound.IP.IsUnspecified() {
		ip := net.ParseIP(host)
		if (host == "" || ip != nil && ip.IsUnspecified()) == bound.IP.IsUnspecified() {
			return nil
		}
		return fmt.Errorf("it is bound to %s, not %s", bound.IP, addrOrAll(host))
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		if ip.IP.Equal(bound.IP) {
			return nil
		}
	}
	return fmt.Errorf("it is bound to %s, not %s", bound.IP, host)
}

// addrOrAll names an address to listen on for a message: "" is every
// address.
func addrOrAll(host string) string {
	if host == "" {
		return "every address"
	}
	return host
}

// The roles of the sockets the chat server takes (LISTEN_FDNAMES).
const (
	Chat    = "chat"    // the chat port (-p/-a)
	HTTP    = "http"    // the web front end (--http-addr)
	Metrics = "metrics" // Prometheus metrics (--metrics-addr)
)
