package client

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// startExtClient is startClient with Extensions.
func startExtClient(t *testing.T, addr string) *session {
	t.Helper()
	return startClientWith(t, addr, func(c *client) { c.cfg.Extensions = true })
}

// startRealServer runs a chat server with the default configuration
// until the test ends, and returns its address.
func startRealServer(t *testing.T) string {
	t.Helper()
	srv := server.New(server.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
	})
	return ln.Addr().String()
}

func TestChunkedFilesWithRealServer(t *testing.T) {
	addr := startRealServer(t)
	tap := tapFrames(t, addr)
	s := startExtClient(t, tap.addr)
	bob := chattest.Dial(t, addr, "bob")
	bob.Join("bob")
	chattest.WaitUntil(t, `"me" has joined: bob's list shows both`, func() bool { return bob.List() == "2 bob me" })
	content := bytes.Repeat([]byte{0, 1, 2, 3, 254, 255, '\n', ' '}, 400000) // 3.2 MB
	frames := protocol.AppendFileHead(nil, protocol.SendFile, []string{"me"}, "big.bin", int64(len(content)))
	frames = append(frames, content...)
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"me"}, []byte("after"))
	bob.Write(frames)

	if c := s.quitAfter(t, "msg: bob: after\n"); c != 0 {
		t.Errorf("exit %d", c)
	}
	if got := s.stdout.String(); got != "file: bob: big.bin\nmsg: bob: after\nquitting\n" {
		t.Errorf("stdout %q", got)
	}
	got, err := os.ReadFile(filepath.Join(s.dir, "me_big.bin"))
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("saved file differs (%v)", err)
	}
	// The file came in chunks, not as the forward_file a server falls
	// back to for a client that did not ask.
	seen := tap.seen()
	if seen["file_begin"] != 1 || seen["file_end"] != 1 || seen["file_chunk"] < len(content)/protocol.MaxChunkData || seen["forward_file"] != 0 {
		t.Errorf("frames to the client: %v; want the file as file_begin, file_chunk... file_end", seen)
	}
}

// frameTap relays one client connection to a server and counts the types
// of the frames the server sends.
type frameTap struct {
	addr string
	mu   sync.Mutex
	n    map[string]int // guarded by mu
}

// tapFrames starts a frameTap in front of the server at server; it ends
// with the test.
func tapFrames(t *testing.T, server string) *frameTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap := &frameTap{addr: ln.Addr().String(), n: map[string]int{}}
	var (
		mu     sync.Mutex
		conns  []net.Conn // guarded by mu
		closed bool       // guarded by mu
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
			return false
		}
		conns = append(conns, c)
		return true
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cc, err := ln.Accept()
		if err != nil || !track(cc) {
			return
		}
		sc, err := net.Dial("tcp", server)
		if err != nil {
			t.Error(err)
			return
		}
		if !track(sc) {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(sc, cc)
			sc.(*net.TCPConn).CloseWrite()
		}()
		// What the server sends goes to the client as it is read.
		r := protocol.NewReader(io.TeeReader(sc, cc))
		for {
			h, err := r.ReadHeader()
			if err == nil {
				err = r.Discard()
			}
			if err != nil {
				cc.(*net.TCPConn).CloseWrite()
				return
			}
			tap.mu.Lock()
			tap.n[h.Name]++
			tap.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return tap
}

// seen returns how many frames of each type the server sent.
func (tap *frameTap) seen() map[string]int {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return maps.Clone(tap.n)
}

func TestExtensionsFallBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 1)
	go func() {
		var firsts []string
		defer func() { done <- firsts }()
		for range 2 {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			r := protocol.NewReader(nc)
			nc.SetDeadline(time.Now().Add(waitTimeout))
			h, err := r.ReadHeader()
			if err != nil {
				nc.Close()
				return
			}
			firsts = append(firsts, h.Name)
			if h.Type != protocol.Join {
				// A server that knows only PROTOCOL.md.
				nc.Write(protocol.AppendEmpty(nil, protocol.ErrUnknownMessage))
				nc.Close()
				continue
			}
			r.Discard()
			nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("plain")))
			io.Copy(io.Discard, nc)
			nc.Close()
		}
	}()
	defer ln.Close()
	s := startExtClient(t, ln.Addr().String())
	if c := s.quitAfter(t, "msg: bob: plain\n"); c != 0 {
		t.Errorf("exit %d", c)
	}
	ln.Close()
	if firsts := <-done; len(firsts) != 2 || firsts[0] != "ext_hello" || firsts[1] != "join" {
		t.Errorf("first frames %v, want [ext_hello join]", firsts)
	}
}

// TestSilentHelloFallsBack: against a server that reads the ext_hello and
// answers nothing, the client falls back to the plain protocol after
// helloWait (2 s), not after its whole connect timeout (10 s; issue 19
// part 6), and joins.
func TestSilentHelloFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan string, 1)
	release := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(release)
		ln.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(waitTimeout))
				r := protocol.NewReader(nc)
				h, err := r.ReadHeader()
				if err != nil {
					return
				}
				switch h.Type {
				case protocol.ExtHello:
					<-release // reads it, never answers
				case protocol.Join:
					p, _ := r.ReadPayload(nil)
					joined <- string(p)
					nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("plain")))
					<-release
				}
			}()
		}
	}()
	start := time.Now()
	s := startExtClient(t, ln.Addr().String()) // the default connect timeout, 10 s
	// The bound is an event's deadline, not a measurement: below the
	// connect timeout, with room for a loaded machine above helloWait.
	limit := helloWait + 4*time.Second
	select {
	case name := <-joined:
		if name != "me" {
			t.Errorf("joined as %q", name)
		}
		t.Logf("joined plainly %v after the start", time.Since(start).Round(time.Millisecond))
	case <-time.After(limit):
		t.Fatalf("no plain join within %v of the start (connect timeout %v); stderr %q", limit, DefaultConnectTimeout, s.stderr)
	}
	waitFor(t, s.stdout, "msg: bob: plain\n")
	if want := "did not answer ext_hello"; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", s.stderr.String(), want)
	}
	s.stdin.Close()
	s.exit(t)
}
