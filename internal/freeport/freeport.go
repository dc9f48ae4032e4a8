// Package freeport picks loopback ports for programs that are told a port
// to listen on before they start: the real binaries in the black-box test
// suites, and the nodes the benchmark tool spawns.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port Pick hands out.
const lowest = 10000

var (
	mu        sync.Mutex
	handedOut = map[int]bool{} // guarded by mu
)

// Pick returns a loopback port that was free a moment ago. It comes from
// below the kernel's range of ephemeral ports, so that no outgoing
// connection and no listener on port 0 (of this process, or of another
// one running beside it) can be given it before the program binds it;
// and no port is handed out twice by one process.
func Pick() (int, error) {
	hi := ephemeralLow()
	if hi-lowest < 1000 {
		return kernelPort() // no room below the ephemeral range
	}
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		p := lowest + rand.IntN(hi-lowest)
		if handedOut[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		handedOut[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port in [%d, %d)", lowest, hi)
}

// ephemeralLow returns the lowest port the kernel gives to outgoing
// connections and to listeners on port 0 (Linux's usual 32768 when it
// cannot tell).
func ephemeralLow() int {
	const usual = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return usual
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return usual
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return usual
	}
	return lo
}

// kernelPort returns a port the kernel picked for a listener on port 0.
func kernelPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}
