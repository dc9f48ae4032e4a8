package client

import (
	"errors"
	"net"
	"slices"

	"github.com/gochat/chat/internal/protocol"
)

// sendMessage sends text to the named users.
func (c *client) sendMessage(names []string, text string) {
	if slices.Contains(names, c.cfg.User) {
		c.expectReply()
	}
	c.writeTaken(protocol.AppendMessage(nil, protocol.SendMessage, names, []byte(text)), messageLabel(names, text))
}

// requestList asks for the list of users.
func (c *client) requestList() {
	c.expectReply()
	c.writeTaken(protocol.AppendEmpty(nil, protocol.RequestUsersList), "list")
}

// errBroken is returned for frames that can no longer be sent.
var errBroken = errors.New("connection broken")

// write sends the frame made of parts, whole, unless the connection is
// broken. It waits while a plain upload holds the connection.
func (c *client) write(parts ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(parts...)
}

// writeLocked is write with wmu held.
func (c *client) writeLocked(parts ...[]byte) error {
	if c.broken.Load() {
		return errBroken
	}
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	if size <= c.w.Available() {
		for _, p := range parts {
			c.w.Write(p) // an error shows in the flush
		}
		return c.flushLocked()
	}
	// A frame larger than the buffer's room (a file chunk, 128 KiB) goes
	// out in one writev: through the buffer, part of it was copied into
	// it and the frame took two writes (issue 19: 8,192 writes and 512
	// MiB of copying a GiB uploaded).
	if err := c.flushLocked(); err != nil {
		return err
	}
	bufs := net.Buffers(parts)
	if _, err := bufs.WriteTo(c.conn()); err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}

// conn returns the connection in use, unwrapped from the swapConn of a
// session that may resume, so that net.Buffers can write it with writev.
func (c *client) conn() net.Conn {
	if s, ok := c.nc.(*swapConn); ok {
		return s.conn()
	}
	return c.nc
}

// flushLocked sends what is buffered; wmu must be held. A failure breaks
// the connection for writing, and is reported unless the session is
// ending.
func (c *client) flushLocked() error {
	if err := c.w.Flush(); err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}

// zeroReader reads an endless run of zero bytes.
type zeroReader struct{}

// Read fills p with zero bytes.
func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
