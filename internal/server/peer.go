package server

import (
	"errors"
	"fmt"

	"github.com/gochat/chat/internal/protocol"
)

// Name implements Peer.
func (c *conn) Name() string { return c.name }

// Send implements Peer.
func (c *conn) Send(frame []byte) error {
	_, err := c.push(frame, false)
	return err
}

// Evict implements Evictable.
func (c *conn) Evict(cause error) { c.kill(reasonEvicted, cause) }

// Offer implements Peer.
func (c *conn) Offer(frame []byte) (<-chan struct{}, error) { return c.push(frame, true) }

// push queues frame (paced: unless the backlog is at the pace mark) and
// cuts the connection off if its queue overflows.
func (c *conn) push(frame []byte, paced bool) (<-chan struct{}, error) {
	if c.sess != nil && protocol.CountedFrame(frame) {
		return c.sess.push(frame, paced) // numbered, and kept for a resume
	}
	retry, err := c.q.push(frame, paced)
	if errors.Is(err, ErrSlowConsumer) {
		c.kill(reasonSlowConsumer, fmt.Errorf("send queue over %d bytes", c.srv.cfg.SendQueueBytes))
	}
	return retry, err
}

// OpenFile implements Peer. A peer taking whole frames gets the file as
// one forward_file once the server holds all of it (spool.go), so that
// nothing else waits behind a file still on its way, and a sender that
// crawls or leaves costs it nothing.
func (c *conn) OpenFile(head FileHead, cancel <-chan struct{}) (FileStream, error) {
	if c.chunked {
		begin := protocol.AppendFileBegin(nil, head.ID, head.Sender, head.Filename, head.Size)
		// Queued whatever the window: a file_begin waits for nobody.
		if _, err := c.q.pushStream(nil, begin, nil, true); err != nil {
			return nil, err
		}
		return newChunkedStream(c, head, cancel), nil
	}
	return c.srv.openSpool(head, c.q)
}

// stander is a peer told that its join stood (try-again's join_ok). The
// hub tells it while it adds the peer, before any sender can find it: a
// join_ok queued once the join had returned came after a message another
// user sent the moment the name was in the hub, and the client, still
// waiting for the join's answer, dropped that message (CI,
// TestFileHostileNamesFromSender).
type stander interface{ stood() }

// stood implements stander: a connection that asked for try-again is
// told its join stood before anything else can be queued for it.
func (c *conn) stood() {
	if c.ext.tryAgain {
		c.q.push(frameJoinOK, false)
	}
}
