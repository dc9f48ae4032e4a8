package chattest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy carries TCP connections to a target, as the network between
// clients and a server, and lets a test break that network: Cut closes
// the connections (a NAT or a proxy restarting), Block refuses new ones
// (a server that is not there), Stall holds every byte without closing
// anything (a partition, not a crash), Blackhole drops every byte of the
// connections open without closing them (a network that vanished),
// SwallowAfter lets the client's writes succeed into a socket nobody
// reads (keeping them for WaitSwallowed), Retarget sends new ones
// elsewhere.
// What the clients send may go at a set rate (a slow uplink, which holds
// a file on its way), and is counted. The e2e, pty, browser and cluster
// suites each had a proxy of their own (issue 24).
type Proxy struct {
	ln   net.Listener
	rate int          // of what clients send, bytes per second; 0: as it comes
	up   atomic.Int64 // bytes clients sent through
	wg   sync.WaitGroup
	// holes counts the Blackhole calls: a connection carried since before
	// the last one drops what it reads.
	holes atomic.Int64

	mu        sync.Mutex
	target    string            // guarded by mu
	blocked   bool              // guarded by mu
	healed    chan struct{}     // closed unless stalled; guarded by mu
	conns     map[net.Conn]bool // both ends of every connection carried; guarded by mu
	forward   int               // client bytes still to forward before swallowing; -1: not swallowing; guarded by mu
	swallowed []byte            // client bytes swallowed since SwallowAfter; guarded by mu
	toClient  []byte            // the last toClientTail bytes carried to clients; guarded by mu
	changed   chan struct{}     // closed and replaced as swallowed or toClient grows; guarded by mu
}

// toClientTail bounds what a Proxy keeps of the bytes it carries to
// clients for WaitToClient: enough for the frames a test waits for, not a
// file's worth.
const toClientTail = 64 << 10

// NewProxy listens on a free port of 127.0.0.1 and carries every
// connection to target, what the client sends at about rate bytes per
// second (0: as it comes). An end one side closes is passed on as a half
// close; a connection that fails is closed both ways. The test's cleanup
// closes the proxy.
func NewProxy(t testing.TB, target string, rate int) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, rate: rate, target: target, healed: make(chan struct{}), conns: map[net.Conn]bool{}, forward: -1, changed: make(chan struct{})}
	close(p.healed)
	p.wg.Go(p.accept)
	t.Cleanup(p.Close)
	return p
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port returns the port clients connect to, on 127.0.0.1.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Up returns how many bytes clients have sent through the proxy so far.
func (p *Proxy) Up() int64 { return p.up.Load() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		target := p.target
		p.conns[c] = true
		hole := p.holes.Load() // under mu, as Blackhole adds
		p.mu.Unlock()
		p.wg.Go(func() { p.carry(c, target, hole) })
	}
}

// carry carries c to target and back until both ways have ended, or
// drops what it reads once Blackhole has been called more than hole times.
func (p *Proxy) carry(c net.Conn, target string, hole int64) {
	defer p.drop(c)
	s, err := net.Dial("tcp", target)
	if err != nil {
		return // the client sees its connection closed, as if refused
	}
	p.mu.Lock()
	_, live := p.conns[c]
	if live {
		p.conns[s] = true
	}
	p.mu.Unlock()
	defer p.drop(s)
	if !live {
		return // cut while dialling
	}
	var up io.Reader = c
	if p.rate > 0 {
		up, _ = Throttle(c, p.rate)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipe(s, c, up, &p.up, hole)
	}()
	p.pipe(c, s, s, nil, hole)
	<-done
}

// pipe copies from r, which reads src, to dst, holding the bytes while
// the proxy is stalled and adding them to count (if not nil), and drops
// them once the connection is in a black hole (more Blackhole calls than
// hole). At src's end it closes dst for writing; when either fails it
// closes both.
func (p *Proxy) pipe(dst, src net.Conn, r io.Reader, count *atomic.Int64, hole int64) {
	buf := make([]byte, 32<<10)
	for {
		p.waitHealed()
		n, err := r.Read(buf)
		p.waitHealed() // bytes read just before a stall wait for its end
		if n > 0 && p.holes.Load() <= hole {
			pass := p.passing(buf[:n], count != nil)
			if _, werr := dst.Write(buf[:pass]); werr != nil {
				err = werr
			} else if count != nil {
				count.Add(int64(pass))
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
		if err != nil {
			dst.Close()
			src.Close()
			return
		}
	}
}

// passing notes b, read from a client (up) or from the target, and
// returns how much of it goes on: from a client, what SwallowAfter still
// lets through (the rest is kept as swallowed).
func (p *Proxy) passing(b []byte, up bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pass := len(b)
	switch {
	case !up:
		p.toClient = append(p.toClient, b...)
		if over := len(p.toClient) - toClientTail; over > 0 {
			p.toClient = append(p.toClient[:0], p.toClient[over:]...)
		}
	case p.forward >= 0:
		pass = min(pass, p.forward)
		p.forward -= pass
		p.swallowed = append(p.swallowed, b[pass:]...)
	default:
		return pass
	}
	close(p.changed)
	p.changed = make(chan struct{})
	return pass
}

// SwallowAfter makes the connections open forward n more bytes of what
// their clients write (0: none), then swallow the rest without closing
// anything: the client's writes succeed into a socket nobody reads, as on
// a link that died without a word (issue 22: what a client sends across a
// lost connection). Cut ends it; new connections are carried whole.
func (p *Proxy) SwallowAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forward, p.swallowed = n, nil
}

// WaitSwallowed waits until the client bytes swallowed since SwallowAfter
// contain s.
func (p *Proxy) WaitSwallowed(t testing.TB, s string) {
	t.Helper()
	p.wait(t, "the proxy to swallow "+s, func() bool { return bytes.Contains(p.swallowed, []byte(s)) })
}

// WaitSwallowedBytes waits until at least n client bytes have been
// swallowed since SwallowAfter: for what a test cannot look for by its
// content (a browser masks what it sends over a WebSocket).
func (p *Proxy) WaitSwallowedBytes(t testing.TB, n int) {
	t.Helper()
	p.wait(t, fmt.Sprintf("the proxy to swallow %d bytes", n), func() bool { return len(p.swallowed) >= n })
}

// WaitToClient waits until the bytes carried to clients lately (the last
// 64 KiB) contain s.
func (p *Proxy) WaitToClient(t testing.TB, s string) {
	t.Helper()
	p.wait(t, "the proxy to carry "+s+" to the client", func() bool { return bytes.Contains(p.toClient, []byte(s)) })
}

// wait waits until cond, called with p.mu held, holds.
func (p *Proxy) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		done, ch := cond(), p.changed
		p.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("never after %v: %s", Timeout, what)
		}
	}
}

func (p *Proxy) waitHealed() {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	<-healed
}

func (p *Proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Cut closes every connection carried so far, both ends, ends a
// SwallowAfter, and returns how many ends there were; new connections are
// still carried.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forward = -1
	n := len(p.conns)
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	return n
}

// Blackhole makes every connection carried so far drop what either end
// writes, closing none, as a network that vanished (a laptop off its
// Wi-Fi, a NAT that forgot the flow) looks to both ends: no FIN, no RST,
// and TCP never gives up (the proxy takes every byte), so only an
// application heartbeat sees it (issue 22). New connections are carried:
// a client that reconnects gets through. It returns how many connections
// it holed.
func (p *Proxy) Blackhole() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holes.Add(1)
	return len(p.conns) / 2
}

// Block makes the proxy close new connections at once (on), as a server
// that is not there, or carry them again (off).
func (p *Proxy) Block(on bool) {
	p.mu.Lock()
	p.blocked = on
	p.mu.Unlock()
}

// Retarget sends new connections to target.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Stall holds every byte in both directions, and closes nothing, until
// Heal.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
		p.healed = make(chan struct{})
	default: // stalled already
	}
}

// Heal ends a stall: the bytes held go on.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.healed:
	default:
		close(p.healed)
	}
}

// Close stops listening, ends a stall, cuts what is open and waits for
// the proxy's goroutines. It may be called more than once.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Heal()
	p.Cut()
	p.wg.Wait()
}
