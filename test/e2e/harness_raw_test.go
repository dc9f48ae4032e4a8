package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Raw sockets speaking the framing of PROTOCOL.md section 2.
// ---------------------------------------------------------------------------

// fr encodes one frame: TYPE SP LENGTH SP PAYLOAD.
func fr(typ, payload string) []byte {
	return []byte(typ + " " + strconv.Itoa(len(payload)) + " " + payload)
}

type frame struct {
	typ     string
	payload []byte
}

func (f frame) String() string {
	return fmt.Sprintf("%s %d %s", f.typ, len(f.payload), quote(string(f.payload)))
}

type rawConn struct {
	label string
	c     *net.TCPConn
	r     *bufio.Reader
}

func wrapRaw(t testing.TB, label string, c *net.TCPConn) *rawConn {
	t.Cleanup(func() { c.Close() })
	_ = c.SetNoDelay(true)
	return &rawConn{label: label, c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// dialRaw opens a raw TCP connection to 127.0.0.1:port.
func dialRaw(t testing.TB, port int, label string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout)
	if err != nil {
		t.Fatalf("raw %s: dial: %v", label, err)
	}
	return wrapRaw(t, label, c.(*net.TCPConn))
}

// rawJoin opens a raw connection, joins as name and waits for `join: name`.
func rawJoin(t testing.TB, srv *server, name string) *rawConn {
	t.Helper()
	rc := dialRaw(t, srv.port, name)
	rc.write(t, fr("join", name))
	srv.out.waitLine(t, "join: "+name, timeout)
	return rc
}

func (rc *rawConn) write(t testing.TB, b []byte) {
	t.Helper()
	if err := rc.tryWrite(b, timeout); err != nil {
		t.Fatalf("raw %s: write of %d bytes: %v", rc.label, len(b), err)
	}
}

func (rc *rawConn) tryWrite(b []byte, d time.Duration) error {
	if err := rc.c.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := rc.c.Write(b)
	return err
}

// writeBytewise writes b one byte per write call.
func (rc *rawConn) writeBytewise(t testing.TB, b []byte) {
	t.Helper()
	for i := range b {
		rc.write(t, b[i:i+1])
	}
}

var errBadFrame = errors.New("bad frame")

// readFrame reads one frame. It returns io.EOF only for a clean end of the
// stream at a frame boundary.
func (rc *rawConn) readFrame(d time.Duration) (frame, error) {
	if err := rc.c.SetReadDeadline(time.Now().Add(d)); err != nil {
		return frame{}, err
	}
	typ, err := rc.token(64)
	if err != nil {
		return frame{}, err
	}
	if typ == "" || strings.Trim(typ, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return frame{}, fmt.Errorf("%w: type %q", errBadFrame, typ)
	}
	ls, err := rc.token(20)
	if err != nil {
		return frame{}, unexpected(err)
	}
	n, perr := strconv.ParseUint(ls, 10, 63)
	if perr != nil || ls != strconv.FormatUint(n, 10) {
		return frame{}, fmt.Errorf("%w: type %q, length %q", errBadFrame, typ, ls)
	}
	if n > 1<<31 {
		return frame{}, fmt.Errorf("%w: type %q, length %d too large for the test", errBadFrame, typ, n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(rc.r, payload); err != nil {
		return frame{}, fmt.Errorf("type %q length %d: payload: %w", typ, n, unexpected(err))
	}
	return frame{typ: typ, payload: payload}, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// token reads up to the next space (at most max bytes before it).
func (rc *rawConn) token(max int) (string, error) {
	var b []byte
	for {
		c, err := rc.r.ReadByte()
		if err != nil {
			if len(b) > 0 {
				return "", fmt.Errorf("after %q: %w", b, unexpected(err))
			}
			return "", err
		}
		if c == ' ' {
			return string(b), nil
		}
		b = append(b, c)
		if len(b) > max {
			return "", fmt.Errorf("%w: no space after %q", errBadFrame, b)
		}
	}
}

// expectFrame reads one frame and requires it to be exactly typ / payload.
func (rc *rawConn) expectFrame(t testing.TB, typ, payload string) {
	t.Helper()
	f, err := rc.readFrame(timeout)
	if err != nil {
		t.Fatalf("raw %s: want frame %s, got error: %v", rc.label, frame{typ, []byte(payload)}, err)
	}
	if f.typ != typ || string(f.payload) != payload {
		t.Fatalf("raw %s: want frame %s, got %s", rc.label, frame{typ, []byte(payload)}, f)
	}
}

// expectEOF requires a clean end of stream (no frame, no reset) within d.
func (rc *rawConn) expectEOF(t testing.TB, d time.Duration) {
	t.Helper()
	f, err := rc.readFrame(d)
	switch {
	case err == io.EOF:
		return
	case err == nil:
		t.Fatalf("raw %s: want the connection closed, got frame %s", rc.label, f)
	default:
		t.Fatalf("raw %s: want a clean close (EOF), got: %v", rc.label, err)
	}
}

// expectRefused requires the frame errType (empty payload) and then a clean
// close: the server's answer to a refused join or a broken frame.
func (rc *rawConn) expectRefused(t testing.TB, errType string) {
	t.Helper()
	rc.expectFrame(t, errType, "")
	rc.expectEOF(t, timeout)
}
