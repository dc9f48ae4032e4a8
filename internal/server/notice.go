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
	upload, notOnline, presence, online bool

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
	if f == protocol.FeatureResume {
		ok := !c.resume && c.srv.cfg.ResumeWindow > 0
		c.resume = c.resume || ok
		return ok
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
	case protocol.FeatureOnline:
		on = &e.online
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

// onlineLimit is the most users online for which the online frame lists
// their names; past it, it gives their number alone. It is presenceLimit:
// past it no presence notice would keep a list current, and it bounds
// what a join storm of n clients asking for online costs to n frames of
// at most 100 names (13 KB with the longest names, about 1 KB with names
// of 8 bytes) and, on a single server, as many sorts of at most 100
// names.
const onlineLimit = presenceLimit

// sendOnline tells c, which has just joined, who is online (the online
// extension). Nothing is printed: the server's stdout is the contract's,
// and a request_users_list the user never typed would show there (issue
// 23 item 9). In a cluster the names are the whole namespace's, as for a
// response_users_list.
func (c *conn) sendOnline() {
	hub := c.srv.cfg.Hub
	// Len first: a hub of many users need not sort them to find out.
	if n := hub.Len(); n > onlineLimit {
		c.Send(protocol.AppendOnline(nil, n, nil))
		return
	}
	names := hub.Users()
	if len(names) > onlineLimit { // more joined meanwhile
		c.Send(protocol.AppendOnline(nil, len(names), nil))
		return
	}
	c.Send(protocol.AppendOnline(nil, len(names), names))
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
