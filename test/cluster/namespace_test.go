package cluster

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// One namespace over three nodes: list, messages and files (small and
// large, to plain and chunked recipients) across nodes, with the exact
// lines of PROTOCOL.md on the sender's node.
func TestNamespace(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice := join(t, n1, "alice")
	bob := join(t, n2, "bob")            // takes whole frames (the contract)
	carol := joinChunked(t, n3, "carol") // takes large files in chunks

	for _, c := range []*conn{alice, bob, carol} {
		c.waitList(usersList("alice", "bob", "carol"))
	}
	n1.Out.WaitLine(t, "request_users_list: alice", timeout)

	alice.Send("hello  both", "bob", "carol", "zed", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice hello  both")
	carol.Expect(protocol.ForwardMessage, "1 alice hello  both")
	n1.Out.WaitLine(t, "msg: alice", timeout)
	n1.Out.WaitLine(t, "msg: alice to non-existent user zed", timeout)

	carol.Tell(alice.Conn, "back to you")
	n3.Out.WaitLine(t, "msg: carol", timeout)

	// A small file (one frame) and a large one (streamed) to both.
	small := []byte("small file\x00\xff")
	large := make([]byte, 3<<20+17)
	for i := range large {
		large[i] = byte(rand.IntN(256))
	}
	for _, f := range []struct {
		name    string
		content []byte
	}{{"small.bin", small}, {"large.bin", large}} {
		alice.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "carol", "nobody"}, f.name, int64(len(f.content))), f.content...))
		n1.Out.WaitLine(t, "file: alice", timeout)
		n1.Out.WaitLine(t, "file: alice to non-existent user nobody", timeout)
		h, p, err := bob.ReadFrame()
		if err != nil || h.Type != protocol.ForwardFile || !bytes.Equal(p, append([]byte("1 alice "+f.name+" "), f.content...)) {
			t.Fatalf("bob: %s: got %s (%d bytes), %v", f.name, h.Name, len(p), err)
		}
		if got := receiveFile(t, carol); sha256.Sum256(got) != sha256.Sum256(f.content) {
			t.Fatalf("carol: %s differs (%d bytes of %d)", f.name, len(got), len(f.content))
		}
	}
	// Nobody's stdout has lines about events of other nodes.
	for i, n := range nodes {
		for _, l := range n.Out.Snapshot() {
			if i != 0 && strings.Contains(l, "alice") {
				t.Errorf("n%d printed %q", i+1, l)
			}
		}
	}
}

// receiveFile reads one file as a chunked recipient gets it: a whole
// forward_file, or file_begin, file_chunk... file_end.
func receiveFile(t *testing.T, c *conn) []byte {
	t.Helper()
	h, p, err := c.ReadFrame()
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if h.Type == protocol.ForwardFile {
		_, rest, _ := bytes.Cut(p, []byte(" "))
		_, rest, _ = bytes.Cut(rest, []byte(" "))
		_, content, _ := bytes.Cut(rest, []byte(" "))
		return content
	}
	if h.Type != protocol.FileBegin {
		t.Fatalf("%s: got %s, want a file", c.Name, h.Name)
	}
	id, _, _, size, err := protocol.ParseFileBegin(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		h, p, err := c.ReadFrame()
		if err != nil {
			t.Fatalf("%s: %v after %d bytes", c.Name, err, len(got))
		}
		switch h.Type {
		case protocol.FileChunk:
			cid, data, err := protocol.ParseChunk(p)
			if err != nil || cid != id {
				t.Fatalf("%s: chunk of %d (%v), want %d", c.Name, cid, err, id)
			}
			got = append(got, data...)
		case protocol.FileEnd:
			if int64(len(got)) != size {
				t.Fatalf("%s: file_end after %d bytes of %d", c.Name, len(got), size)
			}
			return got
		default:
			t.Fatalf("%s: got %s during a file", c.Name, h.Name)
		}
	}
}

// Presence notices (an extension) cover the whole cluster: a user who
// asked for them hears of joins and leaves on other nodes too.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	watcher := dial(t, nodes[0], "watcher")
	watcher.Write(protocol.AppendExtHello(nil, []string{protocol.FeaturePresence}))
	watcher.Expect(protocol.ExtHello, protocol.FeaturePresence)
	watcher.Write(protocol.AppendJoin(nil, protocol.Join, "watcher"))
	nodes[0].Out.WaitLine(t, "join: watcher", timeout)
	bob := join(t, nodes[1], "bob")
	watcher.Expect(protocol.Presence, "joined bob")
	bob.Write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	watcher.Expect(protocol.Presence, "left bob")
}

// The online extension covers the whole cluster: a user who asked for it
// is told, right after its join, of the users of every node (the hub's
// list, as response_users_list gives it), and presence keeps that current
// (issue 23 item 9). The node prints only the join.
func TestOnlineAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	join(t, nodes[1], "bob")
	join(t, nodes[2], "carol")
	waitUsers(t, nodes, 2) // every node knows both
	alice := dial(t, nodes[0], "alice")
	alice.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureOnline, protocol.FeaturePresence}))
	alice.Expect(protocol.ExtHello, "online presence")
	alice.Write(protocol.AppendJoin(nil, protocol.Join, "alice"))
	nodes[0].Out.WaitLine(t, "join: alice", timeout)
	alice.Expect(protocol.Online, usersList("alice", "bob", "carol"))
	dave := join(t, nodes[1], "dave")
	alice.Expect(protocol.Presence, "joined dave")
	dave.Write(protocol.AppendJoin(nil, protocol.Disconnect, "dave"))
	alice.Expect(protocol.Presence, "left dave")
	if out := nodes[0].Out.Snapshot(); !slices.Equal(out, []string{"join: alice"}) {
		t.Fatalf("%s's stdout %q, want the join alone", nodes[0].name, out)
	}
}
