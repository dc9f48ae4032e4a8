package chattest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// HoleProxy relays TCP connections to a target until Blackhole makes
// those open forward nothing more either way, closing none: what each
// end writes is read and dropped, as a network that vanished (a laptop
// off its Wi-Fi, a NAT that forgot the flow) looks to both ends, with
// no FIN and no RST. TCP never gives up on such a connection (the proxy
// acknowledges everything), so only an application heartbeat sees it.
// Connections opened after Blackhole are relayed: a client that
// reconnects gets through. The heartbeat tests of test/e2e and
// test/browser use it (issue 22).
type HoleProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn     // both ends of every relayed connection; guarded by mu
	holes []*atomic.Bool // each relayed connection's switch; guarded by mu
	wg    sync.WaitGroup // the accept loop and the relays
}

// StartHoleProxy listens on a free port of 127.0.0.1 and relays to
// target (host:port); t's cleanup closes it and waits for its
// goroutines.
func StartHoleProxy(t testing.TB, target string) *HoleProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &HoleProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *HoleProxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port.
func (p *HoleProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// serve accepts and relays until the listener is closed.
func (p *HoleProxy) serve() {
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
		hole := new(atomic.Bool)
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.holes = append(p.holes, hole)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out, hole)
		go p.pipe(out, in, hole)
	}
}

// pipe copies from src to dst, dropping what it reads once hole is set,
// until either end fails; then it closes both.
func (p *HoleProxy) pipe(dst, src net.Conn, hole *atomic.Bool) {
	defer p.wg.Done()
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !hole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Blackhole stops forwarding on every connection relayed so far, and
// returns how many there were.
func (p *HoleProxy) Blackhole() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.holes {
		h.Store(true)
	}
	return len(p.holes)
}

// close stops listening, closes what is open and waits for the relays.
func (p *HoleProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
