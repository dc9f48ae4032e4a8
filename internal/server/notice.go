package server

import (
	"strconv"
	"sync"

	"github.com/gochat/chat/internal/protocol"
)

// extState is what a connection negotiated beyond chunked-file, and its
// uploads (docs/PROTOCOL.md, "Extensions").
type extState struct {
	// Set by hello before the join, then read-only (other connections
	// read presence once this one is in the hub).
	upload, notOnline, presence, tryAgain bool

	mu      sync.Mutex
	uploads map[uint64]*upload // by the client's id, until the upload's file_result is sent; guarded by mu
	wg      sync.WaitGroup     // the goroutines of uploads; waited for by endUploads
}

// accept takes feature f if this server knows it and the client has not
// asked for it already. It runs in hello, before the join.
func (c *conn) accept(f string) bool {
	if f == protocol.FeatureChunkedFile {
		if c.chunked {
			return false
		}
		c.chunked = true
		return true
	}
	return c.ext.accept(f)
}

// accept takes feature f if it is one of these extensions not yet taken.
func (e *extState) accept(f string) bool {
	var on *bool
	switch f {
	case protocol.FeatureFileUpload:
		on = &e.upload
	case protocol.FeatureNotOnline:
		on = &e.notOnline
	case protocol.FeaturePresence:
		on = &e.presence
	case protocol.FeatureTryAgain:
		on = &e.tryAgain
	default:
		return false
	}
	if *on {
		return false
	}
	*on = true
	return true
}

// noticeMissing tells a sender that asked for not-online notices which of
// the names its frame gave (in order of first appearance, each once) are
// not among peers, the users it was delivered to.
func (c *conn) noticeMissing(names []string, peers []Peer) {
	if !c.ext.notOnline || len(peers) == len(names) {
		return
	}
	if missing := missingNames(names, peers); len(missing) > 0 {
		c.Send(protocol.AppendNotOnline(nil, missing))
	}
}

// missingNames returns the distinct names, in order of first appearance,
// that name none of peers.
func missingNames(names []string, peers []Peer) []string {
	found := make(map[string]bool, len(peers))
	for _, p := range peers {
		found[p.Name()] = true
	}
	var missing []string
	for _, n := range names {
		if !found[n] {
			found[n] = true
			missing = append(missing, n)
		}
	}
	return missing
}

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

// announce tells the users who asked for presence that c joined or left.
// It is called once c is in the hub (joined) or out of it.
func (c *conn) announce(joined bool) {
	pr := &c.srv.presence
	pr.mu.Lock()
	defer pr.mu.Unlock()
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
		if p, ok := hub.Lookup(name).(*conn); ok && p != except && p.ext.presence {
			for _, f := range frames {
				p.Send(f)
			}
		}
	}
}
