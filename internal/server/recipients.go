package server

import "slices"

// recipients prints the event line (prefix and the sender's name) and a
// line for each distinct name not joined, and appends to dst the distinct
// peers joined under the others.
func (c *conn) recipients(dst []Peer, prefix string, names []string) []Peer {
	s := c.srv
	s.out.println(prefix, c.name)
	peers := slices.Grow(dst, len(names))
	var seen map[string]struct{} // for long lists; short ones are scanned
	for i, name := range names {
		if len(names) > 8 {
			if seen == nil {
				seen = make(map[string]struct{}, len(names))
			}
			if _, dup := seen[name]; dup {
				continue
			}
			seen[name] = struct{}{}
		} else if slices.Contains(names[:i], name) {
			continue
		}
		if p := s.cfg.Hub.Lookup(name); p != nil {
			peers = append(peers, p)
		} else {
			s.out.println(prefix, c.name, " to non-existent user ", name)
		}
	}
	return peers
}
