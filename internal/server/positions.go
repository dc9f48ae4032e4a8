package server

import "maps"

// OriginPositions is implemented by the peers that stand for sessions
// granted resume: Positions returns, for each other server of the hub
// (an origin) whose frames the session has had, the origin sequence of
// the last of them pushed to it (or counted missed by the resume that
// made it, Skipper), or nil for a session without cursor frames (whose
// client names no position in an origin's frames). The map is the
// caller's.
//
// A cluster's node reports these positions in an origin that died (or
// restarted) to the other nodes: they are what that origin had sent the
// session for certain, and a resume elsewhere after this server died too
// counts them missed beyond the client's position, even those the origin
// relayed after its own last report (docs/SESSIONS.md, "A node that
// restarted").
type OriginPositions interface {
	Positions() map[string]uint64
}

// Positions implements OriginPositions.
func (s *session) Positions() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.org == nil || len(s.org.pos) == 0 {
		return nil
	}
	return maps.Clone(s.org.pos)
}
