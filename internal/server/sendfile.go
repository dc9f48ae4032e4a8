package server

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// smallFile is the largest file content read whole before it is relayed;
// larger files are streamed.
const smallFile = 256 << 10

// handleFile relays a send_file frame whose header has been read.
func (c *conn) handleFile() error {
	s := c.srv
	names, filename, err := protocol.ReadFileHead(c.r, 1, protocol.MaxRecipients)
	if err != nil {
		return err
	}
	size := c.r.Remaining()
	if size > s.cfg.MaxFileSize {
		c.logAt(slog.LevelInfo, "file too large", "size", size)
		return &endError{reason: reasonProtocolError, last: frameUnknown}
	}
	c.m.fileBytes.Add(float64(size)) // only files that are relayed
	peers := c.recipients(nil, "file: ", names)
	c.noticeMissing(names, peers)
	if size > smallFile {
		return c.streamFile(peers, filename, size)
	}
	head := protocol.AppendFileHead(nil, protocol.ForwardFile, []string{c.name}, filename, size)
	frame := slices.Grow(head, int(size))[:len(head)+int(size)]
	if _, err := io.ReadFull(c.r, frame[len(head):]); err != nil {
		return err
	}
	return c.deliver(peers, protocol.ForwardFile, frame)
}

// streamFile relays a large file's content to peers chunk by chunk as it
// arrives: into the spool of peers taking whole frames, in file_chunk
// frames to chunked peers, held for those that fall behind (lag.go), so
// that no recipient holds the sender's reading, and with it the sender's
// frames to others, for long. Streams it leaves unfinished, on any path
// out (a panic included), are aborted.
func (c *conn) streamFile(peers []Peer, filename string, size int64) error {
	s := c.srv
	// Open streams in name order, so two senders never wait on each other.
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name(), b.Name()) })
	head := FileHead{ID: s.nextFileID.Add(1), Sender: c.name, Filename: filename, Size: size}
	streams := make([]FileStream, 0, len(peers))
	defer func() {
		for _, st := range streams {
			st.Abort() // does nothing to a stream already closed
		}
	}()
	for _, p := range peers {
		st, err := p.OpenFile(head, c.done)
		if err == nil {
			streams = append(streams, st)
		} else if !errors.Is(err, ErrPeerGone) {
			c.logAt(slog.LevelWarn, "file not delivered to a user", "to", p.Name(), "file", filename, "size", size, "err", err)
		}
	}
	floor := rateFloor{min: s.cfg.MinUploadRate, window: s.cfg.MinUploadWindow}
	var deadline time.Time
	for size > 0 {
		// Refresh the stall deadline about once a second, not per read
		// (and before any read that follows a wait for the peers).
		now := time.Now()
		if deadline.Sub(now) < s.cfg.StallTimeout-min(time.Second, s.cfg.StallTimeout/4) {
			deadline = now.Add(s.cfg.StallTimeout)
			c.nc.SetReadDeadline(deadline)
		}
		fb := getFileBuf()
		n, err := c.r.Read(fb.b[:min(size, int64(len(fb.b)))])
		if err != nil {
			fb.release()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if floor.add(time.Since(now), int64(n)) {
			fb.release()
			return c.tooSlow(filename, head.Size-size)
		}
		size -= int64(n)
		chunk := Chunk{ID: head.ID, Data: fb.b[:n], ref: fb}
		streams = slices.DeleteFunc(streams, func(st FileStream) bool {
			if err := st.Write(chunk); err != nil {
				st.Abort()
				return true
			}
			return false
		})
		fb.release()
	}
	c.nc.SetReadDeadline(time.Time{})
	for _, st := range streams {
		st.Close()
	}
	return nil
}

// tooSlow cuts off a send_file whose sender stayed below the minimum
// rate: the frame cannot be skipped, so the connection goes.
func (c *conn) tooSlow(filename string, got int64) error {
	c.m.slowSenders.Inc()
	c.logAt(slog.LevelWarn, "file sender below the minimum rate; cutting it off", "file", filename, "after", got,
		"min_rate", c.srv.cfg.MinUploadRate, "window", c.srv.cfg.MinUploadWindow)
	return &endError{reason: reasonSlowFileSender}
}
