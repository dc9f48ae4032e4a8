package server

import "github.com/gochat/chat/internal/protocol"

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
