package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"
)

// What the client sends across a lost connection (issue 22, the taken
// feature): the real client and server, with a proxy between them that
// can stop forwarding what the client writes (the writes succeed into a
// socket nobody reads, as on a link that died without a word) and can cut
// a frame in the middle.

// swallowProxy relays TCP connections to target. After swallowAfter(n)
// the connections open forward n more bytes from the client, then read
// and keep the client's bytes without forwarding them, until cut; new
// connections are relayed whole.
type swallowProxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	conns     []net.Conn    // both ends of every connection relayed; guarded by mu
	forward   int           // bytes still to forward once swallowing; -1: not swallowing; guarded by mu
	swallowed []byte        // guarded by mu
	changed   chan struct{} // closed and replaced as swallowed grows; guarded by mu
	wg        sync.WaitGroup
}

func startSwallowProxy(t testing.TB, target string) *swallowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &swallowProxy{ln: ln, target: target, forward: -1, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *swallowProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *swallowProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.fromClient(out, in)
		go func() { // to the client: relayed whole
			defer p.wg.Done()
			io.Copy(in, out)
			in.Close()
			out.Close()
		}()
	}
}

// fromClient relays the client's bytes to the server, or swallows them.
func (p *swallowProxy) fromClient(dst, src net.Conn) {
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
		if p.forward >= 0 {
			pass = min(pass, p.forward)
			p.forward -= pass
			p.swallowed = append(p.swallowed, b[pass:]...)
			close(p.changed)
			p.changed = make(chan struct{})
		}
		p.mu.Unlock()
		if _, err := dst.Write(b[:pass]); err != nil {
			return
		}
	}
}

// swallowAfter makes the connections open forward n more bytes from the
// client, then swallow the rest.
func (p *swallowProxy) swallowAfter(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forward, p.swallowed = n, nil
}

// waitSwallowed waits until the bytes swallowed contain s.
func (p *swallowProxy) waitSwallowed(t testing.TB, s string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		done, ch := bytes.Contains(p.swallowed, []byte(s)), p.changed
		p.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the proxy never swallowed %q", s)
		}
	}
}

// cut closes the connections relayed so far, both ends; new ones are
// relayed whole.
func (p *swallowProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.forward = nil, -1
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *swallowProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

var sentAgainLine = regexp.MustCompile(`^client: sent again (\d+) lines you typed that had not reached the server$`)

// TestResumeSendsAgain: bob's connection goes through a proxy that stops
// forwarding what he writes, once just after the head of a message (the
// server reads half a frame) and once at a frame's edge; bob types on,
// his writes succeed into the proxy, and then the proxy cuts the
// connection. After each resume every line bob typed reaches alice once,
// in order (her stdout is checked line by line), the server prints one
// msg line per message, and bob's stderr says how many lines he sent
// again. Without the taken feature the lines typed into the dead
// connection were lost without a word (alice never got m6).
func TestResumeSendsAgain(t *testing.T) {
	skipShort(t)
	t.Parallel()
	srv := startServer(t)
	alice := joinClient(t, srv, "alice")
	proxy := startSwallowProxy(t, srv.addr())
	bob := startClient(t, proxy.port(), "bob", "--resume")
	srv.out.waitLine(t, "join: bob", timeout)

	next := 1
	typeLines := func(n int) string {
		last := ""
		for range n {
			last = fmt.Sprintf("m%d", next)
			bob.send(t, "msg 1 alice "+last)
			next++
		}
		return last
	}
	arrived := 0
	expectArrived := func() {
		t.Helper()
		for ; arrived < next-1; arrived++ {
			alice.out.waitLine(t, fmt.Sprintf("msg: bob: m%d", arrived+1), timeout)
			srv.out.waitLine(t, "msg: bob", timeout)
		}
	}

	typeLines(5)
	expectArrived()
	for i, keep := range []int{len("send_message 12 1 "), 0} {
		proxy.swallowAfter(keep)
		last := typeLines(5)
		proxy.waitSwallowed(t, last) // bob's writes all went into the proxy
		proxy.cut()
		expectArrived() // all five, once, in order
		l := bob.errs.waitMatches(t, sentAgainLine, i+1, timeout)[i]
		if m := sentAgainLine.FindStringSubmatch(l); m[1] != "5" {
			t.Errorf("round %d: %q, want 5 lines sent again", i+1, l)
		}
	}
	typeLines(1)
	expectArrived()
	bob.quit(t, srv) // the next server line is bob's one disconnected:
	if n := bob.errs.countMatch(regexp.MustCompile(`resumed on`)); n != 2 {
		t.Errorf("bob resumed %d times, want 2", n)
	}
	if n := bob.errs.countMatch(regexp.MustCompile(`may not have reached|may arrive twice|missed`)); n != 0 {
		t.Errorf("bob was told of lost or doubled lines, %d times:\n%s", n, bob.dump())
	}
	alice.quit(t, srv)
}
