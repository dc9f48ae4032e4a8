package server

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// A client that asked for online is told who is online in one frame right
// after its join, before any notice of a later join, and the server prints
// nothing for it: stdout shows the joins alone, where a request_users_list
// of the client's own would have printed `request_users_list: alice`
// (issue 23 item 9). Clients that did not ask (a contract client, one with
// other extensions) get no byte of it: the first frame they read after
// their join is the answer to their own list.
func TestOnlineAtJoin(t *testing.T) {
	s := startServer(t, Config{})
	bob := joined(t, s, "bob")
	carol := joinedWith(t, s, "carol", protocol.FeatureNotOnline, protocol.FeaturePresence)
	alice := joinedWith(t, s, "alice", protocol.FeatureOnline, protocol.FeaturePresence)
	alice.Expect(protocol.Online, "3 alice bob carol")
	carol.Expect(protocol.Presence, "joined alice")
	quiet := joinedWith(t, s, "quiet", protocol.FeatureOnline) // no presence: the list alone
	quiet.Expect(protocol.Online, "4 alice bob carol quiet")
	alice.Expect(protocol.Presence, "joined quiet")
	bob.NC.Close()
	s.out.Wait(t, "disconnected: bob", 1)
	alice.Expect(protocol.Presence, "left bob")

	want := []string{"join: bob", "join: carol", "join: alice", "join: quiet", "disconnected: bob"}
	if got := s.out.Lines(); !slices.Equal(got, want) {
		t.Fatalf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	plain := joined(t, s, "plain")
	for _, c := range []*rawClient{plain, quiet} {
		c.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
		c.Expect(protocol.ResponseUsersList, "4 alice carol plain quiet")
	}
	carol.Expect(protocol.Presence, "joined quiet")
	carol.Expect(protocol.Presence, "left bob")
	carol.Expect(protocol.Presence, "joined plain")
	carol.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	carol.Expect(protocol.ResponseUsersList, "4 alice carol plain quiet")
}

// Past presenceLimit users online, the online frame gives their number
// alone: a join storm of n such clients costs n frames of at most
// presenceLimit names, and past that limit no presence notice would keep a
// list current anyway.
func TestOnlineTooManyToList(t *testing.T) {
	s := startServer(t, Config{MaxClients: presenceLimit + 5})
	for i := range presenceLimit - 1 {
		joined(t, s, "u"+strconv.Itoa(i))
	}
	// presenceLimit online with it: listed.
	atLimit := joinedWith(t, s, "a", protocol.FeatureOnline)
	h, p := atLimit.Frame()
	n, names, err := protocol.ParseOnline(p)
	if h.Type != protocol.Online || err != nil || n != presenceLimit || len(names) != n || names[0] != "a" {
		t.Fatalf("got %s with %d names (%v), want the %d names", h.Name, len(names), err, presenceLimit)
	}

	joined(t, s, "u"+strconv.Itoa(presenceLimit))
	over := joinedWith(t, s, "b", protocol.FeatureOnline)
	h, p = over.Frame()
	if h.Type != protocol.Online {
		t.Fatalf("got %s, want online", h.Name)
	}
	if n, names, err := protocol.ParseOnline(p); err != nil || n != presenceLimit+2 || names != nil {
		t.Fatalf("online %q (%d, %d names, %v): want the count alone", p, n, len(names), err)
	}
}
