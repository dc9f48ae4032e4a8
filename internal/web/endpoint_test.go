package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// TestJoinRefusals: a WebSocket user is admitted or refused as a TCP user
// is, in one namespace with the TCP users, with the same frames and lines.
func TestJoinRefusals(t *testing.T) {
	tests := []struct {
		name      string
		first     string // joined over TCP before the WebSocket user tries
		wsName    string
		maxUsers  int
		wantFrame protocol.Type
		wantLine  string
	}{
		{"name taken by a TCP user", "alice", "alice", 10, protocol.ErrUsernameUnavailable, "disconnected: username not available"},
		{"name with a space", "", "a b", 10, protocol.ErrUsernameUnavailable, "disconnected: username not available"},
		{"name with a slash", "", "a/b", 10, protocol.ErrUsernameUnavailable, "disconnected: username not available"},
		{"hostile name", "", "<img/src=x>", 10, protocol.ErrUsernameUnavailable, "disconnected: username not available"},
		{"server full", "alice", "bob", 1, protocol.ErrServerFull, "disconnected: server full"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := startStack(t, server.Config{MaxClients: tc.maxUsers}, Config{})
			if tc.first != "" {
				st.dialTCP(t, tc.first).join()
			}
			w := st.dialWS(t, tc.wsName, nil)
			w.Write(protocol.AppendJoin(nil, protocol.Join, tc.wsName))
			w.ExpectType(tc.wantFrame)
			w.ExpectEnd()
			st.out.Wait(t, tc.wantLine, 1)
		})
	}

	t.Run("TCP user refused a name a WebSocket user holds", func(t *testing.T) {
		st := startStack(t, server.Config{}, Config{})
		st.dialWS(t, "webby", nil).join()
		c := st.dialTCP(t, "webby")
		c.Write(protocol.AppendJoin(nil, protocol.Join, "webby"))
		c.ExpectType(protocol.ErrUsernameUnavailable)
		st.out.Wait(t, "disconnected: username not available", 1)
	})
}

// TestChat: messages and the user list between WebSocket and TCP users,
// and the server's lines for them.
func TestChat(t *testing.T) {
	st := startStack(t, server.Config{}, Config{})
	w1 := st.joinedWS(t, "w1", "chunked-file")
	w2 := st.joinedWS(t, "w2")
	c := st.joinedTCP(t, "tcp")
	st.out.Wait(t, "join: w1", 1)
	st.out.Wait(t, "join: tcp", 1)

	w1.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	if got, want := string(w1.ExpectType(protocol.ResponseUsersList)), "3 tcp w1 w2"; got != want {
		t.Errorf("list: got %q, want %q", got, want)
	}
	st.out.Wait(t, "request_users_list: w1", 1)

	// One message to both others and a name that is not there; the
	// sender name is always the joined one.
	w1.Write(sendMessage([]string{"tcp", "w2", "ghost", "tcp"}, "hello  <b>all</b>\tok"))
	for _, p := range []*peer{c, w2} {
		if got, want := string(p.ExpectType(protocol.ForwardMessage)), "1 w1 hello  <b>all</b>\tok"; got != want {
			t.Errorf("%s got %q, want %q", p.Name, got, want)
		}
	}
	st.out.Wait(t, "msg: w1", 1)
	st.out.Wait(t, "msg: w1 to non-existent user ghost", 1)

	c.Write(sendMessage([]string{"w1"}, "from the terminal"))
	if got, want := string(w1.ExpectType(protocol.ForwardMessage)), "1 tcp from the terminal"; got != want {
		t.Errorf("w1 got %q, want %q", got, want)
	}

	// Order from one sender to one recipient is kept across many
	// messages, written as the browser writes them: several frames in one
	// WebSocket message, and one frame split over several.
	var stream []byte
	for i := range 200 {
		stream = append(stream, sendMessage([]string{"tcp"}, fmt.Sprintf("m%03d", i))...)
	}
	for len(stream) > 0 {
		n := min(len(stream), 1+rand.IntN(300))
		w2.Write(stream[:n])
		stream = stream[n:]
	}
	for i := range 200 {
		if got, want := string(c.ExpectType(protocol.ForwardMessage)), fmt.Sprintf("1 w2 m%03d", i); got != want {
			t.Fatalf("message %d: got %q, want %q", i, got, want)
		}
	}

	w2.Write(protocol.AppendJoin(nil, protocol.Disconnect, "w2"))
	w2.ExpectEnd()
	st.out.Wait(t, "disconnected: w2", 1)
}

// fileFrame returns a send_file frame.
func fileFrame(names []string, filename string, content []byte) []byte {
	return append(protocol.AppendFileHead(nil, protocol.SendFile, names, filename, int64(len(content))), content...)
}

// receiveFile reads one file from p, as a forward_file frame or as the
// chunked-file extension's frames, and returns its sender, name and
// content.
func receiveFile(t *testing.T, p *peer) (sender, filename string, content []byte) {
	t.Helper()
	h := p.Next()
	switch h.Type {
	case protocol.ForwardFile:
		names, name, err := protocol.ReadFileHead(p.R, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(io.LimitReader(p.R, p.R.Remaining()))
		if err != nil {
			t.Fatal(err)
		}
		return names[0], name, b
	case protocol.FileBegin:
		id, s, name, size, err := protocol.ParseFileBegin(p.Payload())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		for {
			b := p.Payload
			h := p.Next()
			switch h.Type {
			case protocol.FileChunk:
				cid, data, err := protocol.ParseChunk(b())
				if err != nil || cid != id {
					t.Fatalf("chunk of %d: %v", cid, err)
				}
				buf.Write(data)
			case protocol.FileEnd:
				b()
				if int64(buf.Len()) != size {
					t.Fatalf("file of %d bytes announced, %d came", size, buf.Len())
				}
				return s, name, buf.Bytes()
			default:
				t.Fatalf("%s in the middle of a file", h.Name)
			}
		}
	}
	t.Fatalf("%s: got %s, want a file", p.Name, h.Name)
	return
}

// TestFiles: files both ways between a WebSocket user and a TCP user,
// small (forwarded whole) and large (streamed; chunked to a WebSocket user
// that asked for it, as the page does), byte-identical.
func TestFiles(t *testing.T) {
	st := startStack(t, server.Config{}, Config{})
	w := st.joinedWS(t, "web", "chunked-file")
	plain := st.joinedWS(t, "plainweb")
	c := st.joinedTCP(t, "term")

	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1000, 3<<20 + 17} {
		content := make([]byte, size)
		for i := range content {
			content[i] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(content)
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			// web -> terminal, sent in slices as the page sends them.
			f := fileFrame([]string{"term"}, "a.bin", content)
			for len(f) > 0 {
				n := min(len(f), 1<<20)
				w.Write(f[:n])
				f = f[n:]
			}
			s, name, got := receiveFile(t, c)
			if s != "web" || name != "a.bin" || sha256.Sum256(got) != sum {
				t.Errorf("terminal got %q from %q, %d bytes, sum differs: %v", name, s, len(got), sha256.Sum256(got) != sum)
			}
			// terminal -> both web users.
			c.Write(fileFrame([]string{"web", "plainweb"}, "b.bin", content))
			for _, p := range []*peer{w, plain} {
				s, name, got := receiveFile(t, p)
				if s != "term" || name != "b.bin" || sha256.Sum256(got) != sum {
					t.Errorf("%s got %q from %q, %d bytes, sum differs: %v", p.Name, name, s, len(got), sha256.Sum256(got) != sum)
				}
			}
		})
	}
	st.out.Wait(t, "file: web", 1)
	st.out.Wait(t, "file: term", 1)
}

// TestAbuse: what breaks the rules over a WebSocket ends the session as it
// does over TCP.
func TestAbuse(t *testing.T) {
	tests := []struct {
		name      string
		send      []byte
		wantFrame bool // err_unknown_message comes before the close
		wantLine  string
	}{
		{"oversized message header", []byte("send_message 99999999 "), true, "disconnected: w sent unknown command"},
		{"oversized file header", []byte("send_file 99999999999 "), true, "disconnected: w sent unknown command"},
		{"garbage", []byte("\x00\x01\x02 hello\r\n"), true, "disconnected: w sent unknown command"},
		{"bad length", []byte("send_message 01 x"), true, "disconnected: w sent unknown command"},
		{"unknown type", []byte("shout 2 hi"), true, "disconnected: w sent unknown command"},
		{"second join", protocol.AppendJoin(nil, protocol.Join, "w"), true, "disconnected: w sent unknown command"},
		{"text with a control character", sendMessage([]string{"w"}, "a\x1bb"), true, "disconnected: w sent unknown command"},
		{"disconnect naming another user", protocol.AppendJoin(nil, protocol.Disconnect, "x"), true, "disconnected: w sent unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := startStack(t, server.Config{}, Config{})
			w := st.joinedWS(t, "w")
			w.Write(tc.send)
			if tc.wantFrame {
				w.ExpectType(protocol.ErrUnknownMessage)
			}
			w.ExpectEnd()
			st.out.Wait(t, tc.wantLine, 1)
		})
	}

	t.Run("text message", func(t *testing.T) {
		st := startStack(t, server.Config{}, Config{})
		// The stream is binary: a text message ends the session as a
		// dropped connection, and joins nobody.
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(st.httpURL, "http")+Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageText, []byte("join 1 t")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.Read(ctx); err == nil {
			t.Fatal("read a message, want the connection closed")
		}
		st.logs.WaitFunc(t, "the close", 1, func(s string) bool { return strings.Contains(s, "connection closed") })
		if lines := st.out.Lines(); len(lines) != 0 {
			t.Errorf("stdout: %q, want nothing", lines)
		}
	})

	t.Run("bad frame before join", func(t *testing.T) {
		st := startStack(t, server.Config{}, Config{})
		w := st.dialWS(t, "w", nil)
		w.Write([]byte("request_users_list 0 "))
		w.ExpectType(protocol.ErrUnknownMessage)
		w.ExpectEnd()
		if lines := st.out.Lines(); len(lines) != 0 {
			t.Errorf("stdout: %q, want nothing", lines)
		}
	})

	t.Run("join timeout", func(t *testing.T) {
		st := startStack(t, server.Config{JoinTimeout: 300 * time.Millisecond}, Config{})
		w := st.dialWS(t, "w", nil)
		w.ExpectEnd()
		st.logs.WaitFunc(t, "join timeout", 1, func(s string) bool { return strings.Contains(s, "reason=\"join timeout\"") })
	})

	t.Run("file sender stalls", func(t *testing.T) {
		st := startStack(t, server.Config{StallTimeout: 500 * time.Millisecond}, Config{})
		st.joinedTCP(t, "c", "chunked-file")
		w := st.joinedWS(t, "w")
		f := fileFrame([]string{"c"}, "f", make([]byte, 1<<20))
		w.Write(f[:len(f)/2])
		w.ExpectEnd()
		st.out.Wait(t, "disconnected: w", 1)
		st.logs.WaitFunc(t, "file sender stalled", 1, func(s string) bool { return strings.Contains(s, "reason=\"file sender stalled\"") })
	})
}

// TestSlowReader: a WebSocket user that reads nothing while a TCP user
// floods it is cut off as a slow consumer, and the sender is not held.
func TestSlowReader(t *testing.T) {
	st := startStack(t, server.Config{SendQueueBytes: 256 << 10, StallTimeout: 2 * time.Second}, Config{})
	st.joinedWS(t, "slow") // reads nothing from here on
	c := st.joinedTCP(t, "c")
	text := strings.Repeat("x", 60000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		frame := sendMessage([]string{"slow"}, text)
		for range 2000 { // 120 MB: far more than any socket buffers
			c.NC.SetWriteDeadline(time.Now().Add(waitTimeout))
			if _, err := c.NC.Write(frame); err != nil {
				return
			}
		}
	}()
	st.out.Wait(t, "disconnected: slow", 1)
	st.logs.WaitFunc(t, "slow consumer", 1, func(s string) bool { return strings.Contains(s, "reason=\"slow consumer\"") })
	c.NC.Close()
	<-done
}

// TestFlood: frames beyond --flood-rate are paced, not dropped.
func TestFlood(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.FloodRate, cfg.FloodBurst = 200, 5
	st := startStack(t, cfg, Config{})
	w := st.joinedWS(t, "w")
	const n = 60
	var b []byte
	for range n {
		b = protocol.AppendEmpty(b, protocol.RequestUsersList)
	}
	w.Write(b)
	for range n {
		w.ExpectType(protocol.ResponseUsersList)
	}
	if got := counter(t, st.srv, "chat_senders_paused_total", "frames"); got == 0 {
		t.Errorf("chat_senders_paused_total{cause=frames} = 0 after %d frames at once with a burst of 5", n)
	}
}

// counter returns the value of the counter name with the label value.
func counter(t *testing.T, srv *server.Server, name, label string) float64 {
	t.Helper()
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{%s}", name, label)
	return 0
}

func hasLabel(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// TestOrigins: the endpoint takes the page's own origin, origins allowed
// by pattern, and requests with no Origin (not from a browser); others are
// refused before any session starts.
func TestOrigins(t *testing.T) {
	tests := []struct {
		name   string
		allow  []string
		origin string // "" sends none; "SELF" the test server's own
		ok     bool
	}{
		{"own origin", nil, "SELF", true},
		{"no origin", nil, "", true},
		{"foreign origin", nil, "http://evil.example", false},
		{"null origin", nil, "null", false},
		{"allowed host", []string{"chat.example.org"}, "https://chat.example.org", true},
		{"allowed wildcard", []string{"*.example.org"}, "https://a.example.org", true},
		{"wildcard is no suffix match", []string{"*.example.org"}, "https://example.org.evil.test", false},
		{"allowed with scheme", []string{"https://chat.example.org"}, "https://chat.example.org", true},
		{"scheme must match", []string{"https://chat.example.org"}, "http://chat.example.org", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := startStack(t, server.Config{}, Config{AllowOrigins: tc.allow})
			h := http.Header{}
			switch tc.origin {
			case "":
			case "SELF":
				h.Set("Origin", st.httpURL)
			default:
				h.Set("Origin", tc.origin)
			}
			p, resp, err := st.tryWS("u", h)
			if !tc.ok {
				if err == nil {
					p.NC.Close()
					t.Fatal("connection accepted")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("got %v, %v; want 403", resp, err)
				}
				st.logs.WaitFunc(t, "websocket refused", 1, func(s string) bool { return strings.Contains(s, "websocket refused") })
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p.T = t
			defer p.NC.Close()
			p.join()
		})
	}
}

// TestPerAddressLimit: the per-address cap counts WebSocket connections
// by the client's address: the request's, or a trusted proxy's word for
// it, never an untrusted X-Forwarded-For.
func TestPerAddressLimit(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.MaxConnsPerAddr, cfg.LimitLoopback = 1, true
	tests := []struct {
		name    string
		proxies []string
		xff     [2]string // X-Forwarded-For of the two connections
		both    bool      // the second connection is admitted
	}{
		{"same address", nil, [2]string{"", ""}, false},
		{"untrusted X-Forwarded-For is ignored", nil, [2]string{"203.0.113.1", "203.0.113.2"}, false},
		{"trusted proxy, two clients", []string{"127.0.0.1"}, [2]string{"203.0.113.1", "203.0.113.2"}, true},
		{"trusted proxy, one client", []string{"127.0.0.0/8"}, [2]string{"203.0.113.1", "198.51.100.9, 203.0.113.1"}, false},
		{"forged left entry is not believed", []string{"127.0.0.1"}, [2]string{"203.0.113.1, 10.0.0.1", "203.0.113.2, 10.0.0.1"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var prefixes = parsePrefixes(t, tc.proxies)
			st := startStack(t, cfg, Config{TrustedProxies: prefixes})
			h := func(i int) http.Header {
				h := http.Header{}
				if tc.xff[i] != "" {
					h.Set("X-Forwarded-For", tc.xff[i])
				}
				return h
			}
			first := st.dialWS(t, "first", h(0))
			first.join()
			second := st.dialWS(t, "second", h(1))
			if tc.both {
				second.join()
				return
			}
			second.ExpectEnd()
			st.logs.WaitFunc(t, "the refusal", 1, func(s string) bool { return strings.Contains(s, "too many from its address") })
		})
	}
}

func parsePrefixes(t *testing.T, ss []string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := ParseProxy(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestFloodAtHonestReader: a WebSocket user reading at an honest pace is
// not cut off by a TCP user flooding it; the flooder is paced instead, and
// nothing is lost (the pacing of OPERATIONS.md, "Slow readers and
// floods"), as for a TCP recipient.
func TestFloodAtHonestReader(t *testing.T) {
	cfg := server.Config{SendQueueBytes: 256 << 10, PaceBacklog: 64 << 10, StallTimeout: 10 * time.Second}
	for _, pacing := range []bool{true, false} {
		t.Run(fmt.Sprint("pacing ", pacing), func(t *testing.T) {
			if !pacing {
				cfg.PaceBacklog = 0
			}
			st := startStack(t, cfg, Config{})
			victim := st.joinedWS(t, "victim")
			flooder := st.joinedTCP(t, "flooder")
			const frames = 64 // 4 MB: sixteen queues' worth
			text := strings.Repeat("y", 64000)
			go func() {
				for i := range frames {
					flooder.NC.SetWriteDeadline(time.Now().Add(waitTimeout))
					if _, err := flooder.NC.Write(sendMessage([]string{"victim"}, fmt.Sprintf("%02d%s", i, text))); err != nil {
						return
					}
				}
			}()
			// The victim reads at about 1 MB/s: honest, but far slower
			// than the flood.
			start := time.Now()
			var got int
			for got < frames {
				victim.NC.SetReadDeadline(time.Now().Add(waitTimeout))
				h, err := victim.R.ReadHeader()
				if err != nil {
					break
				}
				p, err := victim.R.ReadPayload(nil)
				if err != nil {
					break // cut off in the middle of a frame: judged below
				}
				if h.Type != protocol.ForwardMessage || !strings.HasPrefix(string(p), fmt.Sprintf("1 flooder %02d", got)) {
					t.Fatalf("message %d: %s %.20q", got, h.Name, p)
				}
				got++
				// Keep to the reader's pace (not a wait for an event).
				time.Sleep(time.Until(start.Add(time.Duration(got) * 64 * time.Millisecond)))
			}
			if !pacing {
				if got == frames {
					t.Fatal("without pacing the flood should cut the victim off: the test proves nothing")
				}
				st.out.Wait(t, "disconnected: victim", 1) // the server's line may follow the close
				return
			}
			if slices.Contains(st.out.Lines(), "disconnected: victim") || got < frames {
				t.Fatalf("the victim was cut off after %d of %d messages", got, frames)
			}
		})
	}
}
