package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// join handles the connection's first frame (after an ext_hello, if
// any). It returns nil once the user has joined. Whatever happens, the
// connection's place in the admission order is given up when it returns.
func (c *conn) join() error {
	s := c.srv
	defer s.admit.release(c.ticket)
	c.nc.SetReadDeadline(time.Now().Add(s.cfg.JoinTimeout))
	waitReadable(c.nc)
	h, err := c.readHeader()
	if err != nil {
		return err
	}
	if h.Type == protocol.ExtHello {
		if h, err = c.hello(h); err != nil {
			return err
		}
	}
	if h.Type == protocol.Resume && c.resume {
		return c.resumeSession(h)
	}
	if h.Type != protocol.Join {
		return fmt.Errorf("%w: first frame is %s, not join", protocol.ErrMalformed, h.Name)
	}
	var name string
	var nameErr error
	if h.Length > protocol.MaxJoinPayload {
		nameErr = fmt.Errorf("join payload of %d bytes", h.Length)
	} else {
		if c.buf, err = c.r.ReadPayload(c.buf); err != nil {
			return err
		}
		name, nameErr = protocol.ParseJoin(c.buf)
	}
	s.admit.wait(c.ticket, c.done)
	if isClosed(c.done) || s.shutting.Load() {
		// Cut off while it waited, or the server is shutting down: it
		// never joins, so stdout shows no join for it.
		return errConnClosing
	}

	if nameErr == nil {
		c.name = name
		if qj, ok := s.cfg.Hub.(QueuedJoiner); ok {
			nameErr = qj.JoinQueued(c.joinPeer(), s.cfg.MaxClients, func() { s.admit.release(c.ticket) })
		} else {
			nameErr = s.cfg.Hub.Join(c.joinPeer(), s.cfg.MaxClients)
		}
		if nameErr != nil {
			c.name, c.sess = "", nil
		}
	} else if s.cfg.Hub.Len() >= s.cfg.MaxClients {
		nameErr = ErrServerFull
	}
	switch {
	case nameErr == nil:
		c.joined = true
		s.out.println("join: ", c.name)
		if c.sess != nil && c.ext.tryAgain {
			// A session keeps what is sent to it until it is attached
			// (startSession): nothing comes before its join_ok. A
			// connection's own was queued by the hub (stood).
			c.q.push(frameJoinOK, false)
		}
		c.startSession() // before announce's online frame, the session's first counted one
		c.announce(true)
		c.logAt(slog.LevelInfo, "joined")
		c.nc.SetReadDeadline(time.Time{})
		return nil
	case errors.Is(nameErr, ErrServerFull):
		s.out.println("disconnected: server full")
		return &endError{reason: reasonServerFull, last: frameFull}
	case errors.Is(nameErr, ErrUnavailable):
		// Never a silent close (issue 21): a client that asked for
		// try-again is told to, and tries again by itself; one that
		// knows only the contract gets the more honest of its two
		// refusals, server full: the server cannot take anybody now,
		// whereas its name may well be free (docs/PROTOCOL.md,
		// "try-again").
		if c.ext.tryAgain {
			c.logAt(slog.LevelWarn, "join not decided; told to try again", "err", nameErr)
			return &endError{reason: reasonUnavailable, err: nameErr, last: protocol.AppendTryAgain(nil, tryAgainAfter())}
		}
		c.logAt(slog.LevelWarn, "join not decided; refused as server full", "err", nameErr)
		s.out.println("disconnected: server full")
		return &endError{reason: reasonUnavailable, err: nameErr, last: frameFull}
	default:
		c.logAt(slog.LevelInfo, "join refused", "err", nameErr)
		s.out.println("disconnected: username not available")
		return &endError{reason: reasonNameUnavailable, last: frameUnavailable}
	}
}

// tryAgainAfter is the wait a try_again asks for: 1 to 2 s, at random,
// so that the clients of a node cut off do not all come back at once.
// A registry without a majority is back within a leader election (4-9
// s) or not soon; the client doubles its wait at each refusal.
func tryAgainAfter() time.Duration {
	return time.Second + rand.N(time.Second)
}

// hello answers an ext_hello frame (header h) with the features this
// server shares with the client, and returns the next frame's header.
func (c *conn) hello(h protocol.Header) (protocol.Header, error) {
	if h.Length > protocol.MaxExtHello {
		return h, fmt.Errorf("%w: ext_hello of %d bytes", protocol.ErrMalformed, h.Length)
	}
	p, err := c.r.ReadPayload(c.buf)
	if err != nil {
		return h, err
	}
	features, err := protocol.ParseFeatures(p)
	if err != nil {
		return h, err
	}
	var accepted []string
	for _, f := range features {
		if c.accept(f) {
			accepted = append(accepted, f)
		}
	}
	c.logAt(slog.LevelDebug, "extensions", "asked", features, "accepted", accepted)
	c.q.push(protocol.AppendExtHello(nil, accepted), false)
	return c.readHeader()
}
