package server

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

func TestByteBudget(t *testing.T) {
	b := newByteBudget(1000, 500)
	if d := b.spend(400); d != 0 {
		t.Fatalf("spend within the burst waited %v", d)
	}
	if d := b.spend(100); d != 0 {
		t.Fatalf("spend of the rest of the burst waited %v", d)
	}
	// 500 more than saved, with no time passed: half a second at 1000
	// bytes/s. (The clock is the test's: a loaded machine once let 100 ms
	// trickle in.)
	if d := b.spendAt(500, b.last); d != 500*time.Millisecond {
		t.Fatalf("spend past the burst waits %v, want 500ms", d)
	}
	// A quarter of a second pays a quarter of the debt.
	if d := b.spendAt(0, b.last.Add(250*time.Millisecond)); d != 250*time.Millisecond {
		t.Fatalf("after 250ms the debt waits %v, want 250ms", d)
	}
	// Time refills the budget, up to the burst.
	if d := b.spendAt(500, b.last.Add(time.Hour)); d != 0 {
		t.Fatalf("after an hour, spending the burst waited %v", d)
	}
	if b.tokens != 0 {
		t.Fatalf("saved %v bytes past the burst", b.tokens)
	}
}

// smallBuffers makes every accepted connection's kernel send buffer
// small, so that a test's flood fills the server's queues rather than
// the kernel's.
type smallBuffers struct{ net.Listener }

// smallListener wraps ln in smallBuffers, for listenAndServe.
func smallListener(ln net.Listener) net.Listener { return smallBuffers{ln} }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// startSmallServer starts a server whose connections have small kernel
// send buffers.
func startSmallServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerOn(t, cfg, smallListener)
}

// readThrottled reads c's frames at about rate bytes per second and
// sends each forward_message's payload on got, until the connection ends.
func readThrottled(c *rawClient, rate int, got chan<- string) {
	defer close(got)
	slow, _ := chattest.Throttle(c.NC, rate)
	r := protocol.NewReader(slow)
	for {
		h, err := r.ReadHeader()
		if err != nil {
			return
		}
		p, err := r.ReadPayload(nil)
		if err != nil {
			return
		}
		if h.Type == protocol.ForwardMessage {
			got <- string(p)
		}
	}
}

// flood sends n messages of size bytes to victim from c, numbered.
func flood(c *rawClient, victim string, n, size int) []string {
	var frames []byte
	var texts []string
	for i := range n {
		text := fmt.Sprintf("%04d%s", i, strings.Repeat("x", size-4))
		texts = append(texts, "1 "+victim+" "+text)
		frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{victim}, []byte(text))
	}
	go c.NC.Write(frames)
	return texts
}

// A sender flooding a recipient that reads at an honest pace is paused
// instead of getting the recipient cut off, and nothing is lost.
func TestBacklogPacesFlood(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backlog int
		cutOff  bool
	}{
		{"paced", 64 << 10, false},
		{"without pacing the same flood cuts the victim off", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSmallServer(t, Config{SendQueueBytes: 256 << 10, PaceBacklog: tc.backlog, StallTimeout: 10 * time.Second})
			victim := joined(t, s, "victim")
			victim.NC.(*net.TCPConn).SetReadBuffer(64 << 10)
			alice := joined(t, s, "alice")
			got := make(chan string, 100)
			go readThrottled(victim, 512<<10, got)
			want := flood(alice, "victim", 64, 16<<10) // 1 MiB: four queues' worth
			if tc.cutOff {
				s.out.Wait(t, "disconnected: victim", 1)
				return
			}
			for i, w := range want {
				select {
				case g, ok := <-got:
					if !ok {
						t.Fatalf("victim cut off after %d messages; stdout:\n%s", i, strings.Join(s.out.Lines(), "\n"))
					}
					if !strings.HasPrefix(g, "1 alice "+w[len("1 victim "):][:4]) {
						t.Fatalf("message %d out of order: %.20q", i, g)
					}
				case <-time.After(waitTimeout):
					t.Fatalf("message %d never came", i)
				}
			}
			if n := s.out.Count("disconnected: victim"); n != 0 {
				t.Fatal("victim cut off")
			}
			if v := metricValue(t, s.Server, "chat_senders_paused_total", "cause", "backlog"); v == 0 {
				t.Error("the flood was never paused for the backlog")
			}
		})
	}
}

// A recipient that stops reading is still cut off (after the stall
// limit), which frees its paced sender to go on with the others.
func TestPacedSenderFreedWhenRecipientStops(t *testing.T) {
	s := startSmallServer(t, Config{SendQueueBytes: 256 << 10, PaceBacklog: 64 << 10, StallTimeout: 500 * time.Millisecond})
	sink := joined(t, s, "sink") // never reads
	sink.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
	alice, bob := joined(t, s, "alice"), joined(t, s, "bob")
	var frames []byte
	for range 64 {
		frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"sink"}, []byte(strings.Repeat("x", 16<<10)))
	}
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob"}, []byte("after the flood"))
	go alice.NC.Write(frames)
	s.out.Wait(t, "disconnected: sink", 1)
	bob.Expect(protocol.ForwardMessage, "1 alice after the flood")
	if v := metricValue(t, s.Server, "chat_slow_consumers_total", "", ""); v != 1 {
		t.Errorf("slow consumers = %v, want 1", v)
	}
	if v := metricValue(t, s.Server, "chat_senders_paused_total", "cause", "backlog"); v == 0 {
		t.Error("alice was never paused for sink's backlog")
	}
}

// The budget of bytes delivered per second paces a sender whose frames
// reach many recipients, and loses nothing.
func TestByteBudgetPacesFanOut(t *testing.T) {
	s := startServer(t, Config{FloodBytes: 200 << 10, FloodBytesBurst: 100 << 10})
	alice := joined(t, s, "alice")
	rcpts := []string{"r0", "r1", "r2", "r3"}
	clients := make([]*rawClient, len(rcpts))
	for i, name := range rcpts {
		clients[i] = joined(t, s, name)
	}
	var frames []byte
	text := strings.Repeat("y", 10<<10)
	for i := range 10 { // 10 x 10 KiB x 4 = 400 KiB: about 1.5 s past the burst
		frames = protocol.AppendMessage(frames, protocol.SendMessage, rcpts, fmt.Appendf(nil, "%d%s", i, text))
	}
	start := time.Now()
	alice.Write(frames)
	for _, c := range clients {
		for i := range 10 {
			c.Expect(protocol.ForwardMessage, fmt.Sprintf("1 alice %d%s", i, text))
		}
	}
	if v := metricValue(t, s.Server, "chat_senders_paused_total", "cause", "bytes"); v == 0 {
		t.Errorf("never paused for the byte budget (took %v)", time.Since(start))
	}
}
