package server

import (
	"fmt"

	"github.com/gochat/chat/internal/protocol"
)

// loop handles frames after the join until one ends the connection, and
// returns why.
func (c *conn) loop() error {
	defer c.watchHeartbeat()()
	for {
		c.hbWaiting()
		c.idle()
		h, err := c.readHeader()
		c.hbHeard()
		if err != nil {
			return err
		}
		if limit := c.srv.cfg.limits().MaxPayload(protocol.ToServer, h.Type); limit < 0 || h.Length > limit {
			return fmt.Errorf("%w: unexpected %s frame of %d bytes", protocol.ErrMalformed, h.Name, h.Length)
		}
		if err := c.paceReads(); err != nil {
			return err
		}
		switch h.Type {
		case protocol.RequestUsersList:
			err = c.handleList()
		case protocol.SendMessage:
			err = c.handleSend()
		case protocol.SendFile:
			err = c.handleFile()
		case protocol.Disconnect:
			err = c.handleDisconnect()
		case protocol.FileBegin, protocol.FileChunk, protocol.FileEnd, protocol.FileAbort:
			err = c.handleUpload(h.Type)
		case protocol.Received:
			err = c.handleReceived()
		case protocol.Ping:
			err = c.handlePing()
		case protocol.Pong:
			err = c.handlePong()
		default:
			err = fmt.Errorf("%w: unexpected %s frame", protocol.ErrMalformed, h.Name)
		}
		if err != nil {
			return err
		}
	}
}

// idle lets go of the buffers when no input is waiting, so that a
// connection waiting for input holds as little memory as it can, and then
// waits for input.
func (c *conn) idle() {
	if cap(c.buf) > maxKeptBuffer {
		c.buf = nil
	}
	if cap(c.names) > maxKeptNames {
		c.names, c.peers = nil, nil
	}
	if c.r.Buffered() > 0 {
		return
	}
	if c.counting() {
		c.tellTaken() // the input pauses: the client learns what was taken
	}
	if c.stats != nil {
		c.flushStats()
	}
	c.r.Release()
	c.buf = nil
	waitReadable(c.nc)
}

// handleList answers a request_users_list frame.
func (c *conn) handleList() error {
	if !c.beginTake() {
		return c.notTaken()
	}
	defer c.endTake()
	c.srv.out.println("request_users_list: ", c.name)
	return c.deliver([]Peer{c}, protocol.ResponseUsersList, protocol.AppendUsersList(nil, c.srv.cfg.Hub.Users()))
}

// handleSend relays a send_message frame.
func (c *conn) handleSend() (err error) {
	if c.buf, err = c.r.ReadPayload(c.buf); err != nil {
		return err
	}
	names, text, err := protocol.ParseSendInto(c.names, c.buf)
	if err != nil {
		return err
	}
	c.names = names
	if !c.beginTake() {
		return c.notTaken()
	}
	defer c.endTake()
	frame := protocol.AppendMessage(nil, protocol.ForwardMessage, []string{c.name}, text)
	peers := c.recipients(c.peers[:0], "msg: ", names)
	c.noticeMissing(names, peers)
	err = c.deliver(peers, protocol.ForwardMessage, frame)
	clear(peers) // hold no user that leaves
	c.peers = peers[:0]
	return err
}

// handleDisconnect ends the session on a disconnect frame naming the
// user itself.
func (c *conn) handleDisconnect() (err error) {
	if c.buf, err = c.r.ReadPayload(c.buf); err != nil {
		return err
	}
	if string(c.buf) != c.name {
		return fmt.Errorf("%w: disconnect names %q", protocol.ErrMalformed, c.buf)
	}
	return errQuit
}
