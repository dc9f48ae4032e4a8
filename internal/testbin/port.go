package testbin

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lowestPort is the lowest port FreePort hands out.
const lowestPort = 10000

var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{} // guarded by portsMu
)

// FreePort returns a loopback port that was free a moment ago, for a
// program under test to listen on. It comes from below the kernel's range
// of ephemeral ports, so that no outgoing connection and no listener on
// port 0 (of this test, or of another one running beside it) can be given
// it before the program binds it; and no port is handed out twice by one
// test process.
func FreePort(t testing.TB) int {
	t.Helper()
	hi := ephemeralLow()
	if hi-lowestPort < 1000 {
		return kernelPort(t) // no room below the ephemeral range
	}
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := lowestPort + rand.IntN(hi-lowestPort)
		if handedOut[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		handedOut[p] = true
		return p
	}
	t.Fatalf("no free port in [%d, %d)", lowestPort, hi)
	return 0
}

// ephemeralLow returns the lowest port the kernel gives to outgoing
// connections and to listeners on port 0 (Linux's usual 32768 when it
// cannot tell).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}

// kernelPort returns a port the kernel picked for a listener on port 0.
func kernelPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
