package server

import "github.com/gochat/chat/internal/protocol"

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
