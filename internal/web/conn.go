package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// errTextMessage is returned by Read when the browser sends a text
// message: the stream is carried in binary messages only.
var errTextMessage = errors.New("websocket: text message on a binary stream")

// wsConn adapts a WebSocket connection to the net.Conn the chat server
// serves: the bytes of the binary messages read, in order, are the client's
// stream of frames, and what is written goes out in binary messages, small
// writes coalesced. Message boundaries carry no meaning, as TCP segment
// boundaries carry none.
//
// Read is called by one goroutine at a time, and Write by one goroutine at
// a time, as the chat server does; Close and the deadline setters may be
// called from any goroutine.
type wsConn struct {
	ws     *websocket.Conn
	raw    net.Conn      // the hijacked HTTP connection under ws
	br     *bufio.Reader // ws's read buffer, to tell whether input waits in it
	remote net.Addr      // the client's address (the request's, or the proxy's word for it)

	// pipelined is set, before the connection is handed out, when input
	// came before the upgrade was answered: the library holds it where
	// the idle wait cannot see it, so this connection never waits idle.
	pipelined bool

	// shutdown is closed when the gateway closes, as the chat server
	// shuts down: Close then says so to the browser (goingAway). Nil: never.
	shutdown <-chan struct{}
	goneAway atomic.Bool // goingAway ran

	msg io.Reader // the message being read, nil between messages; owned by Read

	rd, wr deadline

	// Writes are coalesced: Write copies small writes into pending, and a
	// flusher goroutine, started when there is something to send and
	// ended when there is not, sends what piled up as one message. So the
	// frames the server writes in one batch (one writev on TCP) travel in
	// one WebSocket message, not one message each.
	wmu      sync.Mutex
	wcond    sync.Cond // signalled when pending is taken or a send ends; L is &wmu
	pending  []byte    // bytes not yet handed to the flusher; guarded by wmu
	flushing bool      // a flusher runs; guarded by wmu
	sending  bool      // a large write is being sent, without wmu; guarded by wmu
	werr     error     // the first failed send; guarded by wmu
}

const (
	// pendingSize is the most bytes a write waits with before it is sent.
	pendingSize = 64 << 10
	// directWrite is the size from which a write is sent at once, as its
	// own message, without a copy (file content).
	directWrite = 16 << 10
)

// pendingPool holds the buffers of pending writes: a connection holds one
// only while it has bytes to send.
var pendingPool = sync.Pool{New: func() any {
	b := make([]byte, 0, pendingSize)
	return &b
}}

func getPending() []byte { return (*pendingPool.Get().(*[]byte))[:0] }

func putPending(b []byte) {
	b = b[:0]
	pendingPool.Put(&b)
}

func newWSConn(ws *websocket.Conn, raw net.Conn, br *bufio.Reader, remote net.Addr) *wsConn {
	ws.SetReadLimit(-1) // messages are streamed, never held whole
	c := &wsConn{ws: ws, raw: raw, br: br, remote: remote}
	c.wcond.L = &c.wmu
	c.rd.abort = c.abort
	c.wr.abort = c.abort
	return c
}

// Read reads the next bytes of the client's stream. A close frame with a
// normal status ends it with io.EOF.
func (c *wsConn) Read(p []byte) (int, error) {
	if err := c.rd.begin(); err != nil {
		return 0, err
	}
	n, err := c.read(p)
	return n, c.rd.end(err)
}

func (c *wsConn) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.msg == nil {
			typ, r, err := c.ws.Reader(context.Background())
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway:
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.MessageBinary {
				c.abort()
				return 0, errTextMessage
			}
			c.msg = r
		}
		n, err := c.msg.Read(p)
		if err == io.EOF {
			c.msg = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		if err != nil {
			// A connection cut in the middle of a message: the library
			// returns the part of the payload it read without unmasking
			// it (coder/websocket v1.8.15, msgReader.read), which the
			// server would read as frames, find garbage in and end the
			// session for a breach of the protocol, where the cut is a
			// lost connection the client resumes (issue 22,
			// TestCutMidFrameIsLost). A frame cut by the loss is not
			// taken anyway: the bytes are dropped.
			return 0, err
		}
		return n, err
	}
}

// Write sends p: a large p at once as one binary message, a small one
// with the writes that come before the flusher takes them. It returns
// once p is sent or copied; a send that fails fails the next Write.
func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.wr.begin(); err != nil {
		return 0, err
	}
	err := c.write(p)
	if err = c.wr.end(err); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(p) >= directWrite {
		// Keep the order: what is pending goes first.
		for c.werr == nil && (c.flushing || len(c.pending) > 0) {
			c.wcond.Wait()
		}
		if c.werr != nil {
			return c.werr
		}
		c.sending = true
		c.wmu.Unlock()
		err := c.ws.Write(context.Background(), websocket.MessageBinary, p)
		c.wmu.Lock()
		c.sending = false
		c.wcond.Broadcast() // goingAway may wait for it
		if err != nil && c.werr == nil {
			c.werr = err
		}
		return c.werr
	}
	for c.werr == nil && len(c.pending)+len(p) > pendingSize {
		c.wcond.Wait()
	}
	if c.werr != nil {
		return c.werr
	}
	if c.pending == nil {
		c.pending = getPending()
	}
	c.pending = append(c.pending, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	return nil
}

// flush sends the pending bytes, one message per batch, until there are
// none. It is started by write and owned by the connection.
//
// Of the project's batching writers (the server's sendQueue.writeLoop and
// printer.flushLoop, the cluster's outbound.run; issue 24 item 10) it is
// the closest to printer.flushLoop, and differs from it where it matters:
// a full pending buffer makes Write wait (the send queue above measures
// its peer's progress by Write, so a slow browser must look slow), a
// failed send is final and fails the next Write, and the buffer comes
// from a pool and goes back when the flusher ends, since an idle
// connection should hold none.
func (c *wsConn) flush() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for len(c.pending) > 0 && c.werr == nil {
		buf := c.pending
		c.pending = nil
		c.wcond.Broadcast()
		c.wmu.Unlock()
		err := c.ws.Write(context.Background(), websocket.MessageBinary, buf)
		putPending(buf)
		c.wmu.Lock()
		if err != nil && c.werr == nil {
			c.werr = err
		}
	}
	if c.pending != nil && c.werr != nil {
		putPending(c.pending)
		c.pending = nil
	}
	c.flushing = false
	c.wcond.Broadcast()
}

// flushed waits until everything written has been sent (or a send
// failed).
func (c *wsConn) flushed() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for c.werr == nil && (c.flushing || len(c.pending) > 0) {
		c.wcond.Wait()
	}
	return c.werr
}

// CloseWrite sends the WebSocket close frame (normal closure) and waits,
// reading and discarding, until the browser answers with its own or
// closeLinger passes; then the connection is closed. It is the WebSocket
// form of the server's "shut down the writing side and discard input until
// the peer closes".
func (c *wsConn) CloseWrite() error {
	t := time.AfterFunc(closeLinger, c.abort)
	defer t.Stop()
	if err := c.flushed(); err != nil {
		return err
	}
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// closeLinger bounds the wait for the browser's close frame.
const closeLinger = 2 * time.Second

// Close closes the connection at once, from any goroutine, and stops its
// deadline timers. As the server shuts down it first tells the browser
// so (goingAway).
func (c *wsConn) Close() error {
	select {
	case <-c.shutdown:
		c.goingAway()
	default:
	}
	c.abort()
	c.rd.set(time.Time{})
	c.wr.set(time.Time{})
	return nil
}

// goingAwayFrame is the close frame of a server shutting down (RFC 6455
// section 5.5.1: FIN and opcode 8, an unmasked payload of the status,
// 1001 "going away", and a reason).
var goingAwayFrame = append([]byte{0x88, 2 + byte(len(goingAwayReason)), 0x03, 0xe9}, goingAwayReason...)

const goingAwayReason = "server shutting down"

// goingAwayWait bounds each step of goingAway: the wait for a write under
// way, and the write of goingAwayFrame. The server cuts its connections
// off one after another as it shuts down, and one whose peer takes nothing
// must not hold the others up for long; a healthy one takes microseconds,
// but the bound must also outlast a goroutine descheduled on a loaded
// machine (a deadline passed before the write starts fails it unwritten).
const goingAwayWait = 100 * time.Millisecond

// goingAway sends goingAwayFrame once: the server is cutting the
// connection off as it shuts down, and its session ends with it. The page
// resumes a connection that ends without a close frame (a cut), for as
// long as the session's window, since a browser cannot tell a refused
// connection from a network that is down; told, it shows at once that the
// session is over (issue 22). The frame is written under the library,
// which has no way to send a close frame without waiting for the peer's
// answer (Close waits up to 5 s), so never inside a message: a write under
// way (the flusher's, or a large one) is let finish first, and nothing
// queued after it is sent (the connection is being cut off anyway). A
// write that does not finish within goingAwayWait (a peer that takes
// nothing) leaves the connection cut without the frame, and its page tries
// to resume until the window passes.
func (c *wsConn) goingAway() {
	if c.goneAway.Swap(true) {
		return
	}
	deadline := time.Now().Add(goingAwayWait)
	wake := time.AfterFunc(goingAwayWait, func() {
		c.wmu.Lock()
		c.wcond.Broadcast()
		c.wmu.Unlock()
	})
	defer wake.Stop()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	c.werr = net.ErrClosed // nothing more is written, and the flusher stops
	for (c.flushing || c.sending) && time.Now().Before(deadline) {
		c.wcond.Wait()
	}
	if c.flushing || c.sending {
		return
	}
	c.raw.SetWriteDeadline(time.Now().Add(goingAwayWait))
	c.raw.Write(goingAwayFrame)
}

// abort closes the connection under the WebSocket first, so that nothing
// waits on a peer that takes nothing (the close handshake included), then
// lets the WebSocket release what it holds.
func (c *wsConn) abort() {
	c.raw.Close()
	c.ws.CloseNow()
}

func (c *wsConn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.remote }

func (c *wsConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wr.set(t)
	return nil
}

func (c *wsConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *wsConn) SetWriteDeadline(t time.Time) error { c.wr.set(t); return nil }

// SyscallConn gives the server's idle wait the descriptor under the
// WebSocket, so that an idle WebSocket client, like an idle TCP one, waits
// for input holding no read buffer. Its Read(f) returns at once when input
// already waits in the WebSocket's buffer; otherwise it waits on the
// descriptor as f asks. A TLS connection has no descriptor to offer: then
// Read returns at once.
func (c *wsConn) SyscallConn() (syscall.RawConn, error) {
	return rawConn{c}, nil
}

type rawConn struct{ c *wsConn }

func (r rawConn) inner() (syscall.RawConn, error) {
	sc, ok := r.c.raw.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

func (r rawConn) Control(f func(fd uintptr)) error {
	rc, err := r.inner()
	if err != nil {
		return err
	}
	return rc.Control(f)
}

func (r rawConn) Read(f func(fd uintptr) bool) error {
	// The wait is a read: the read deadline ends it.
	if err := r.c.rd.begin(); err != nil {
		return err
	}
	defer r.c.rd.end(nil)
	if r.c.pipelined || r.c.br.Buffered() > 0 {
		return nil
	}
	rc, err := r.inner()
	if err != nil {
		return nil
	}
	return rc.Read(f)
}

func (r rawConn) Write(func(fd uintptr) bool) error {
	return fmt.Errorf("web: raw writes: %w", errors.ErrUnsupported)
}

// deadline is one direction's deadline. As on a TCP socket, an operation
// started after the deadline fails at once with os.ErrDeadlineExceeded;
// unlike on one, an operation still running when it passes ends the whole
// connection (a WebSocket cannot resume a message cut in the middle). The
// chat server ends a connection whose deadline passes anyway.
type deadline struct {
	abort func() // closes the connection; set once by newWSConn

	mu      sync.Mutex
	timer   *time.Timer // guarded by mu
	at      time.Time   // the deadline, zero for none; guarded by mu
	expired bool        // at has passed; guarded by mu
	active  bool        // an operation runs; guarded by mu
	hit     bool        // the deadline ended the running operation; guarded by mu
}

// set sets the deadline to t (zero: none).
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at, d.expired, d.hit = t, false, false
	if t.IsZero() {
		if d.timer != nil {
			d.timer.Stop()
		}
		return
	}
	wait := max(time.Until(t), 0)
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
	} else {
		d.timer.Reset(wait)
	}
}

// fire runs when the timer expires.
func (d *deadline) fire() {
	d.mu.Lock()
	if d.at.IsZero() || time.Now().Before(d.at) {
		d.mu.Unlock() // a stale timer: the deadline moved
		return
	}
	d.expired = true
	abort := d.active
	d.hit = abort
	d.mu.Unlock()
	if abort {
		d.abort()
	}
}

// begin starts an operation, or fails if the deadline has passed.
func (d *deadline) begin() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.expired {
		return os.ErrDeadlineExceeded
	}
	d.active = true
	return nil
}

// end ends an operation and returns its error, as a timeout if the
// deadline cut it.
func (d *deadline) end(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active = false
	if err != nil && d.hit {
		return os.ErrDeadlineExceeded
	}
	return err
}
