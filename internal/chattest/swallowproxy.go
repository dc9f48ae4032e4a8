package chattest

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// SwallowProxy relays TCP connections to a target, and can stop
// forwarding what the client writes while the connection stays open: the
// client's writes then succeed into a socket nobody reads, as on a link
// that died without a word, until the test cuts the connection (issue
// 22: what the client sends across a lost connection). It records what it
// relays to the client, so that a test can wait for a frame to have
// reached it.
type SwallowProxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	conns     []net.Conn    // both ends of every connection relayed; guarded by mu
	forward   int           // bytes still to forward once swallowing; -1: not swallowing; guarded by mu
	swallowed []byte        // guarded by mu
	toClient  []byte        // guarded by mu
	changed   chan struct{} // closed and replaced as swallowed or toClient grows; guarded by mu
	wg        sync.WaitGroup
}

// StartSwallowProxy listens on a free port of 127.0.0.1 and relays to
// target; t's cleanup closes it.
func StartSwallowProxy(t testing.TB, target string) *SwallowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &SwallowProxy{ln: ln, target: target, forward: -1, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's host:port.
func (p *SwallowProxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port.
func (p *SwallowProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *SwallowProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close() // the target is gone: the client sees the connection end
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.relay(out, in, true)
		go p.relay(in, out, false)
	}
}

// relay copies src to dst until either fails, then closes both. From the
// client (fromClient), bytes past the forward budget are swallowed.
func (p *SwallowProxy) relay(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		p.mu.Lock()
		pass := len(b)
		switch {
		case !fromClient:
			p.toClient = append(p.toClient, b...)
			p.changedLocked()
		case p.forward >= 0:
			pass = min(pass, p.forward)
			p.forward -= pass
			p.swallowed = append(p.swallowed, b[pass:]...)
			p.changedLocked()
		}
		p.mu.Unlock()
		if _, err := dst.Write(b[:pass]); err != nil {
			return
		}
	}
}

func (p *SwallowProxy) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// SwallowAfter makes the connections open forward n more bytes from the
// client (0: none), then swallow what it writes.
func (p *SwallowProxy) SwallowAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forward, p.swallowed = n, nil
}

// WaitSwallowed waits until the client's bytes swallowed since
// SwallowAfter contain s.
func (p *SwallowProxy) WaitSwallowed(t testing.TB, s string) {
	t.Helper()
	p.wait(t, "the proxy to swallow "+s, func() bool { return bytes.Contains(p.swallowed, []byte(s)) })
}

// WaitToClient waits until the bytes relayed to the client contain s.
func (p *SwallowProxy) WaitToClient(t testing.TB, s string) {
	t.Helper()
	p.wait(t, "the proxy to relay "+s+" to the client", func() bool { return bytes.Contains(p.toClient, []byte(s)) })
}

// wait waits until cond, called with p.mu held, holds.
func (p *SwallowProxy) wait(t testing.TB, what string, cond func() bool) {
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

// Cut closes the connections relayed so far, both ends, as a NAT or a
// proxy restart does; new ones are relayed whole.
func (p *SwallowProxy) Cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.forward = nil, -1
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// Close stops listening, cuts what is open and waits for the relays.
func (p *SwallowProxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
