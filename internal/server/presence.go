package server

import (
	"strconv"
	"sync"

	"github.com/gochat/chat/internal/protocol"
)

// presenceLimit is the most users online for which joins and leaves are
// announced one by one: each announcement goes to every subscriber, so a
// wave of n joins costs n*n frames. Above it the subscribers are told
// once that the announcements pause, and once that they resume.
const presenceLimit = 100

// presence serialises the join and leave notices of a server.
type presence struct {
	mu          sync.Mutex
	subscribers int  // joined users who asked for presence; guarded by mu
	paused      bool // more than presenceLimit users were online at the last event; guarded by mu
}

// announce tells the users who asked for presence that c joined or left,
// and c, joined and asking for online, who is online. It is called once c
// is in the hub (joined) or out of it.
func (c *conn) announce(joined bool) {
	pr := &c.srv.presence
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if joined && c.ext.online {
		// Under the presence lock, so that no notice of a join or leave
		// the list does not reflect comes before it, nor one it does
		// after it.
		c.sendOnline()
	}
	if c.ext.presence {
		if joined {
			pr.subscribers++
		} else {
			pr.subscribers--
		}
	}
	var newcomer *conn
	if joined && c.ext.presence {
		newcomer = c
	}
	c.srv.presenceLocked(c.name, joined, c, newcomer)
}

// PresenceSource is implemented by a Hub whose users also join and leave
// through other servers (a cluster's other nodes): the server gives it a
// function to call for those joins and leaves, so that presence notices
// cover the whole namespace.
type PresenceSource interface {
	OnPresence(func(name string, joined bool))
}

// remotePresence announces a join or leave made through another server.
func (s *Server) remotePresence(name string, joined bool) {
	s.presence.mu.Lock()
	defer s.presence.mu.Unlock()
	s.presenceLocked(name, joined, nil, nil)
}

// presenceLocked tells the users who asked for presence, but except, that
// name joined or left; newcomer, if not nil, has just joined and asked
// for presence. The caller holds the presence lock.
func (s *Server) presenceLocked(name string, joined bool, except, newcomer *conn) {
	pr := &s.presence
	if pr.subscribers == 0 {
		pr.paused = false
		return
	}
	paused := protocol.AppendPresence(nil, protocol.PresencePaused, strconv.Itoa(presenceLimit))
	if s.cfg.Hub.Len() > presenceLimit {
		if !pr.paused {
			pr.paused = true
			s.broadcastPresence(except, paused)
		}
		if newcomer != nil {
			newcomer.Send(paused) // the pause applies to the newcomer too
		}
		return
	}
	var frames [][]byte
	if pr.paused {
		pr.paused = false
		frames = append(frames, protocol.AppendPresence(nil, protocol.PresenceResumed, ""))
	}
	event := protocol.PresenceLeft
	if joined {
		event = protocol.PresenceJoined
	}
	s.broadcastPresence(except, append(frames, protocol.AppendPresence(nil, event, name))...)
}

// broadcastPresence sends frames to every connection of this server, but
// except, that asked for presence. The caller holds the presence lock.
func (s *Server) broadcastPresence(except *conn, frames ...[]byte) {
	hub := s.cfg.Hub
	for _, name := range hub.Users() {
		// Remote users of a cluster are not connections here: their own
		// server tells them.
		if p := presenceTarget(hub.Lookup(name), except); p != nil {
			for _, f := range frames {
				p.Send(f)
			}
		}
	}
}
