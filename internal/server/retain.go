package server

// What the other servers of a hub keep for a session (issue 22, second
// part; docs/SESSIONS.md, "Origin retention: bounds and
// acknowledgements"). In a cluster every node (an origin) keeps what it
// relayed to a remote user whose session was granted resume, so that a
// resume on another node, after the user's node died, gets it from the
// origins. The user's server decides how much each origin keeps
// (Retainer), and tells them what its client has acknowledged
// (AckTaker), so that an origin keeps about what is unacknowledged
// instead of the whole window.

// Retainer is implemented by the peers that stand for sessions granted
// resume: Retain returns the most bytes of the session's frames another
// server of the hub may keep for a resume of it elsewhere.
type Retainer interface {
	Retain() int
}

// AckTaker is implemented by the peers that stand for sessions granted
// resume: TakeAcked returns, for each origin (another server of the hub)
// whose frames the client acknowledged since the last call, the origin
// sequence of the last of them, or nil if none moved. The map is the
// caller's.
type AckTaker interface {
	TakeAcked() map[string]uint64
}

// Retain implements Retainer: --resume-buffer for a client that reads
// cursor frames, 0 for one that does not. Only a client with cursors can
// name its position in an origin's frames, so for the others nothing an
// origin kept would ever be replayed (a resume elsewhere without a cursor
// only redirects the origins: docs/SESSIONS.md).
func (s *session) Retain() int {
	if s.org == nil {
		return 0
	}
	return s.srv.cfg.resumeBuffer()
}

// TakeAcked implements AckTaker.
func (s *session) TakeAcked() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.org == nil || len(s.org.acked) == 0 {
		return nil
	}
	a := s.org.acked
	s.org.acked = nil
	return a
}

// noteAckedLocked notes, for TakeAcked, the origin positions of the kept
// frames numbered up to n, which the client has received: called before
// they are let go of. Frames already dropped past the resume buffer are
// not attributed (their origins are not known any more); a later frame
// of the same origin moves its position past them. s.mu is held.
func (s *session) noteAckedLocked(n uint64) {
	if s.org == nil || n < s.first || s.head >= len(s.kept) {
		return
	}
	k := min(n-s.first+1, uint64(len(s.kept)-s.head))
	for _, e := range s.org.from[s.head : s.head+int(k)] {
		if e.origin == "" || e.seq == 0 {
			continue // this server's own, or not numbered
		}
		if s.org.acked == nil {
			s.org.acked = make(map[string]uint64)
		}
		// An origin's frames come in its order (a replayed one
		// already pushed is dropped): the last is the highest.
		s.org.acked[e.origin] = e.seq
	}
}

// Skipper is implemented by the peers that stand for sessions granted
// resume: SkipTo counts the frames of origin up to seq as dealt with
// (the hub counted them missed for the resume that made the session), so
// that any of them that comes later is dropped as one already pushed.
type Skipper interface {
	SkipTo(origin string, seq uint64)
}

// SkipTo implements Skipper.
func (s *session) SkipTo(origin string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.org != nil && origin != "" && seq > s.org.pos[origin] {
		s.org.pos[origin] = seq
	}
}
