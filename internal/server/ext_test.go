package server

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// joinedExt joins name after asking for the chunked-file extension.
func joinedExt(t *testing.T, s *testServer, name string) *rawClient {
	t.Helper()
	c := dial(t, s.addr)
	c.Write(protocol.AppendExtHello(nil, []string{"future-thing", protocol.FeatureChunkedFile}))
	c.Expect(protocol.ExtHello, protocol.FeatureChunkedFile)
	c.Join(name)
	s.out.Wait(t, "join: "+name, 1)
	return c
}

// expectFileAbort reads a chunked file's frames until its file_abort.
func (c *rawClient) expectFileAbort() {
	c.T.Helper()
	for {
		h, p := c.Frame()
		if h.Type == protocol.FileAbort {
			return
		}
		if h.Type != protocol.FileBegin && h.Type != protocol.FileChunk {
			c.T.Fatalf("got %s %q, want a file's frames up to file_abort", h.Name, p)
		}
	}
}

func TestExtHello(t *testing.T) {
	s := startServer(t, Config{})
	none := dial(t, s.addr)
	none.Write(protocol.AppendExtHello(nil, []string{"other"}))
	none.Expect(protocol.ExtHello, "")
	none.Join("none")
	s.out.Wait(t, "join: none", 1)

	for _, bad := range []string{"ext_hello 3 A/B", "ext_hello 300 ", "ext_hello 2 a  "} {
		c := dial(t, s.addr)
		c.Write([]byte(bad))
		c.Expect(protocol.ErrUnknownMessage, "")
	}
	again := dial(t, s.addr) // only before the join
	again.Write(protocol.AppendExtHello(nil, nil))
	again.Expect(protocol.ExtHello, "")
	again.Write(protocol.AppendExtHello(nil, nil))
	again.Expect(protocol.ErrUnknownMessage, "")

	after := joined(t, s, "after")
	after.Write(protocol.AppendExtHello(nil, nil))
	s.expectKicked(t, after)
}

func TestChunkedFileInterleavesChat(t *testing.T) {
	s := startServer(t, Config{})
	alice := joined(t, s, "alice")
	carol := joined(t, s, "carol")
	bob := joinedExt(t, s, "bob")
	plain := joined(t, s, "plain")

	// 16 MB, streamed: more than bob's queue (a window of 2 MiB) and the
	// sockets between can hold while he reads nothing, so the file cannot
	// end before he reads on.
	content := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 900000)
	// plain reads meanwhile (its forward_file comes once the file is
	// whole; bob, who reads nothing yet, has the rest of the file held
	// for him).
	plainErr := make(chan error, 1)
	go func() {
		plain.NC.SetReadDeadline(time.Now().Add(3 * waitTimeout)) // 16 MB on a loaded machine
		h, err := plain.R.ReadHeader()
		if err != nil || h.Type != protocol.ForwardFile {
			plainErr <- fmt.Errorf("plain got %s, %v", h.Name, err)
			return
		}
		p, err := plain.R.ReadPayload(nil)
		if err != nil || !bytes.Equal(p[len("1 alice big.bin "):], content) {
			plainErr <- fmt.Errorf("plain copy damaged (%v)", err)
			return
		}
		plainErr <- nil
	}()
	go func() {
		b := protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "plain"}, "big.bin", int64(len(content)))
		alice.NC.Write(append(b, content...))
	}()
	// Bob reads the first chunk, then carol chats to him mid-transfer:
	// her message must not wait for the file's end.
	h, p := bob.Frame()
	if h.Type != protocol.FileBegin {
		t.Fatalf("got %s, want file_begin", h.Name)
	}
	id, sender, name, size, err := protocol.ParseFileBegin(p)
	if err != nil || sender != "alice" || name != "big.bin" || size != int64(len(content)) {
		t.Fatalf("file_begin %q: %v", p, err)
	}
	// Bob reads on only once carol's message is queued: the file's end
	// is not queued yet (16 MB cannot pass while he reads nothing: the
	// rest is held for him), so it cannot come before her message. (Reading on at once let the whole
	// file pass first on a loaded machine.)
	q := s.cfg.Hub.Lookup("bob").(*conn).q
	pushed := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.pushed
	}
	before := pushed()
	carol.Send("during", "bob")
	// Her message is the only whole frame queued for bob meanwhile (the
	// count only grows: the message may already be written when this
	// looks).
	chattest.WaitUntil(t, "carol's message is queued for bob", func() bool { return pushed() > before })
	var got []byte
	sawChat, sawChatBeforeEnd := false, false
	for {
		h, p := bob.Frame()
		switch h.Type {
		case protocol.FileChunk:
			cid, data, err := protocol.ParseChunk(p)
			if err != nil || cid != id {
				t.Fatalf("chunk %v id %d, want %d", err, cid, id)
			}
			got = append(got, data...)
			continue
		case protocol.ForwardMessage:
			if string(p) != "1 carol during" {
				t.Fatalf("message %q", p)
			}
			sawChat, sawChatBeforeEnd = true, len(got) < len(content)
			continue
		case protocol.FileEnd:
			if eid, _ := protocol.ParseFileID(p); eid != id {
				t.Fatalf("file_end for %d, want %d", eid, id)
			}
		default:
			t.Fatalf("unexpected %s", h.Name)
		}
		break
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("chunked content differs: got %d bytes", len(got))
	}
	// Bob had read only the first frame when carol wrote, and at most a
	// window of the file waits in his queue, so her message must come
	// before the file's end: chat is never held behind a chunked file.
	if !sawChat || !sawChatBeforeEnd {
		t.Fatalf("carol's message did not arrive before the file's end (seen: %v)", sawChat)
	}
	// The plain recipient got one whole forward_file frame.
	if err := <-plainErr; err != nil {
		t.Fatal(err)
	}
}

func TestChunkedAbortKeepsRecipient(t *testing.T) {
	s := startServer(t, Config{})
	alice := joined(t, s, "alice")
	bob := joinedExt(t, s, "bob")
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "f", 10<<20))
	alice.Write(make([]byte, 1<<20))
	alice.NC.Close()
	s.out.Wait(t, "disconnected: alice", 1)
	bob.expectFileAbort()
	// Bob is still in: he can chat.
	bob.Send("fine", "bob")
	bob.Expect(protocol.ForwardMessage, "1 bob fine")
	if strings.Contains(strings.Join(s.out.Lines(), "\n"), "disconnected: bob") {
		t.Fatal("bob was cut off")
	}
}

func TestChunkedSmallFileIsWhole(t *testing.T) {
	s := startServer(t, Config{})
	alice := joined(t, s, "alice")
	bob := joinedExt(t, s, "bob")
	alice.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "s.txt", 5), "hello"...))
	bob.Expect(protocol.ForwardFile, fmt.Sprintf("1 alice s.txt %s", "hello"))
}

func TestChunkedConcurrentFiles(t *testing.T) {
	s := startServer(t, Config{})
	bob := joinedExt(t, s, "bob")
	contents := map[string][]byte{}
	for i, name := range []string{"amy", "cid", "dan"} {
		c := joined(t, s, name)
		data := bytes.Repeat([]byte{byte(i), 0xff, '\n'}, 1<<20) // 3 MiB each, streamed
		contents[name] = data
		go c.NC.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, name+".bin", int64(len(data))), data...))
	}
	got := map[uint64][]byte{}
	sender := map[uint64]string{}
	for done := 0; done < 3; {
		h, p := bob.Frame()
		switch h.Type {
		case protocol.FileBegin:
			id, from, _, _, err := protocol.ParseFileBegin(p)
			if err != nil {
				t.Fatal(err)
			}
			sender[id] = from
		case protocol.FileChunk:
			id, data, err := protocol.ParseChunk(p)
			if err != nil || sender[id] == "" {
				t.Fatalf("chunk for unknown id %d (%v)", id, err)
			}
			got[id] = append(got[id], data...)
		case protocol.FileEnd:
			id, _ := protocol.ParseFileID(p)
			if !bytes.Equal(got[id], contents[sender[id]]) {
				t.Fatalf("file from %s damaged: %d bytes", sender[id], len(got[id]))
			}
			done++
		default:
			t.Fatalf("unexpected %s", h.Name)
		}
	}
}

func TestPlainConcurrentFilesTakeTurns(t *testing.T) {
	s := startServer(t, Config{})
	bob := joined(t, s, "bob")
	want := map[string][]byte{}
	for i, name := range []string{"amy", "cid"} {
		c := joined(t, s, name)
		data := bytes.Repeat([]byte{byte(i + 1), 0, ' '}, 1<<20)
		want[name] = data
		go c.NC.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", name}, "f", int64(len(data))), data...))
		go io.Copy(io.Discard, c.NC) // each sender reads its own copy
	}
	for range 2 {
		h, p := bob.Frame()
		if h.Type != protocol.ForwardFile {
			t.Fatalf("got %s", h.Name)
		}
		var from string
		for name := range want {
			if bytes.HasPrefix(p, []byte("1 "+name+" f ")) {
				from = name
			}
		}
		if from == "" || !bytes.Equal(p[len("1 "+from+" f "):], want[from]) {
			t.Fatalf("file damaged or interleaved (%d bytes, from %q)", len(p), from)
		}
		delete(want, from)
	}
}
