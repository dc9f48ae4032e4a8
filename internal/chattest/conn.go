// Package chattest is the raw-protocol test client and the stdout line log
// that the server, gateway and black-box suites share (issue 24 item 1:
// before it, six suites each had their own, and two their own line log).
//
// A Conn speaks frames directly, so that a test can send what the real
// client never would (bad frames, floods, half uploads) and check every
// byte the server answers. Every read and write has a deadline (Timeout
// unless the test sets Conn.Timeout), so a test waits on the event it
// wants and fails, instead of hanging, when it never comes.
package chattest

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Timeout bounds every wait of a Conn or a LineLog by default: generous,
// for a loaded 2-core machine running several suites at once.
const Timeout = 15 * time.Second

// Conn is a raw protocol connection owned by one test. Its fields are the
// test's to use for what the methods do not cover (a socket option, a
// header read by hand).
type Conn struct {
	T       testing.TB
	Name    string // for messages; Join sets it
	NC      net.Conn
	R       *protocol.Reader
	Timeout time.Duration // of each read and write
}

// New wraps nc, which is closed when t ends.
func New(t testing.TB, name string, nc net.Conn) *Conn {
	t.Cleanup(func() { nc.Close() })
	return &Conn{T: t, Name: name, NC: nc, R: protocol.NewReader(nc), Timeout: Timeout}
}

// Dial connects to addr over TCP; name labels the connection in failures.
func Dial(t testing.TB, addr, name string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, addr, err)
	}
	return New(t, name, nc)
}

func (c *Conn) fatalf(format string, args ...any) {
	c.T.Helper()
	if c.Name != "" {
		format = c.Name + ": " + format
	}
	c.T.Fatalf(format, args...)
}

// Write writes b whole, which may be any bytes, or fails the test.
func (c *Conn) Write(b []byte) {
	c.T.Helper()
	c.NC.SetWriteDeadline(time.Now().Add(c.Timeout))
	if _, err := c.NC.Write(b); err != nil {
		c.fatalf("write of %d bytes: %v", len(b), err)
	}
}

// TryWrite writes b whole and returns the error instead of failing the
// test: for a write the server may refuse to read (a flood it paces, a
// connection it is ending).
func (c *Conn) TryWrite(b []byte) error {
	if err := c.NC.SetWriteDeadline(time.Now().Add(c.Timeout)); err != nil {
		return err
	}
	_, err := c.NC.Write(b)
	return err
}

// WriteBytewise writes b one byte per write call, so that the server sees
// every frame boundary and field split across reads.
func (c *Conn) WriteBytewise(b []byte) {
	c.T.Helper()
	for i := range b {
		c.Write(b[i : i+1])
	}
}

// TCP returns the connection as a *net.TCPConn, for socket options (a
// small receive buffer, a linger of 0), or fails the test if it is not one.
func (c *Conn) TCP() *net.TCPConn {
	c.T.Helper()
	tc, ok := c.NC.(*net.TCPConn)
	if !ok {
		c.fatalf("connection is a %T, not TCP", c.NC)
	}
	return tc
}

// Join sends join for name. It does not wait for the server to admit the
// name: each suite knows how (a stdout line, the users list).
func (c *Conn) Join(name string) {
	c.T.Helper()
	c.Name = name
	c.Write(protocol.AppendJoin(nil, protocol.Join, name))
}

// Hello sends ext_hello asking for features and returns the payload of the
// server's ext_hello: the features it accepted.
func (c *Conn) Hello(features ...string) string {
	c.T.Helper()
	c.Write(protocol.AppendExtHello(nil, features))
	return string(c.ExpectType(protocol.ExtHello))
}

// Send sends text to the names in to.
func (c *Conn) Send(text string, to ...string) {
	c.T.Helper()
	c.Write(protocol.AppendMessage(nil, protocol.SendMessage, to, []byte(text)))
}

// Tell sends text to to, and requires to's next frame to be it, forwarded
// from c.
func (c *Conn) Tell(to *Conn, text string) {
	c.T.Helper()
	c.Send(text, to.Name)
	to.Expect(protocol.ForwardMessage, "1 "+c.Name+" "+text)
}

// ReadFrame reads the next frame whole.
func (c *Conn) ReadFrame() (protocol.Header, []byte, error) {
	c.NC.SetReadDeadline(time.Now().Add(c.Timeout))
	h, err := c.R.ReadHeader()
	if err != nil {
		return h, nil, err
	}
	p, err := c.R.ReadPayload(nil)
	return h, p, err
}

// Frame reads the next frame whole or fails the test.
func (c *Conn) Frame() (protocol.Header, []byte) {
	c.T.Helper()
	h, p, err := c.ReadFrame()
	if err != nil {
		c.fatalf("read: %v", err)
	}
	return h, p
}

// Next reads the next frame's header or fails the test; Payload reads
// what follows it.
func (c *Conn) Next() protocol.Header {
	c.T.Helper()
	c.NC.SetReadDeadline(time.Now().Add(c.Timeout))
	h, err := c.R.ReadHeader()
	if err != nil {
		c.fatalf("read header: %v", err)
	}
	return h
}

// Payload reads the payload of the frame whose header Next read.
func (c *Conn) Payload() []byte {
	c.T.Helper()
	p, err := c.R.ReadPayload(nil)
	if err != nil {
		c.fatalf("read payload: %v", err)
	}
	return p
}

// Expect reads the next frame, which must be typ with exactly payload.
func (c *Conn) Expect(typ protocol.Type, payload string) {
	c.T.Helper()
	h, p, err := c.ReadFrame()
	if err != nil {
		c.fatalf("want %s %.80q, got %v", typ, payload, err)
	}
	if h.Type != typ || string(p) != payload {
		c.fatalf("got %s %.80q, want %s %.80q", h.Name, p, typ, payload)
	}
}

// ExpectType reads the next frame, which must be of type typ, and returns
// its payload.
func (c *Conn) ExpectType(typ protocol.Type) []byte {
	c.T.Helper()
	h := c.Next()
	if h.Type != typ {
		c.fatalf("got %s frame (%d bytes), want %s", h.Name, h.Length, typ)
	}
	return c.Payload()
}

// ExpectClosed requires the server to close the connection cleanly, at a
// frame boundary, with no frame first.
func (c *Conn) ExpectClosed() {
	c.T.Helper()
	c.NC.SetReadDeadline(time.Now().Add(c.Timeout))
	h, err := c.R.ReadHeader()
	if err == nil {
		p := make([]byte, min(h.Length, 80)) // enough to name it, whatever its size
		n, _ := io.ReadFull(c.R, p)
		c.fatalf("got frame %s %q (%d bytes), want the connection closed", h.Name, p[:n], h.Length)
	}
	if err != io.EOF {
		c.fatalf("got %v, want a clean close (EOF)", err)
	}
}

// ExpectRefused requires the frame typ with an empty payload and then a
// clean close: the server's answer to a refused join or a broken frame.
func (c *Conn) ExpectRefused(typ protocol.Type) {
	c.T.Helper()
	c.Expect(typ, "")
	c.ExpectClosed()
}

// ExpectEnd reads (and drops) whatever arrives until the server ends the
// connection, by a close or a reset; a read that times out fails.
func (c *Conn) ExpectEnd() {
	c.T.Helper()
	c.NC.SetReadDeadline(time.Now().Add(c.Timeout))
	var b [64 << 10]byte
	for {
		_, err := c.R.Read(b[:])
		if err == io.EOF && c.R.Remaining() == 0 {
			// Between frames: read the next header.
			if _, err = c.R.ReadHeader(); err == nil {
				continue
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.fatalf("connection still open after %v", c.Timeout)
		}
		return
	}
}

// List asks for the users list and returns it, skipping frames that come
// first (messages, notices).
func (c *Conn) List() string {
	c.T.Helper()
	c.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	for {
		h, p := c.Frame()
		if h.Type == protocol.ResponseUsersList {
			return string(p)
		}
	}
}
