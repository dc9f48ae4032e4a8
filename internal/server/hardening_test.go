package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testcert"
)

// metricValue returns the value of the named counter or gauge, summed over
// the series whose labels include label=value (label "" matches all).
func metricValue(t *testing.T, s *Server, name, label, value string) float64 {
	t.Helper()
	families, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestFloodControlPacesWithoutLoss(t *testing.T) {
	s := startServer(t, Config{FloodRate: 200, FloodBurst: 5})
	alice, bob := joined(t, s, "alice"), joined(t, s, "bob")
	const n = 40
	var frames []byte
	for i := range n {
		frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"bob"}, fmt.Appendf(nil, "m%d", i))
	}
	alice.Write(frames)
	for i := range n {
		bob.Expect(protocol.ForwardMessage, fmt.Sprintf("1 alice m%d", i))
	}
	if d := metricValue(t, s.Server, "chat_flood_delays_total", "", ""); d == 0 {
		t.Error("a burst past the limit was not paced")
	}
}

func TestPerAddressLimit(t *testing.T) {
	s := startServer(t, Config{MaxConnsPerAddr: 2, LimitLoopback: true})
	closed := make(chan struct{}, 10)
	s.testHookConnClosed = func() { closed <- struct{}{} }
	a := joined(t, s, "a")
	joined(t, s, "b")
	third := dial(t, s.addr)
	third.ExpectClosed()
	if v := metricValue(t, s.Server, "chat_conns_rejected_per_ip_total", "", ""); v != 1 {
		t.Errorf("rejections counted %v, want 1", v)
	}
	a.Write(protocol.AppendJoin(nil, protocol.Disconnect, "a"))
	a.ExpectClosed()
	a.NC.Close()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("a's connection never released")
	}
	joined(t, s, "c") // the freed slot is usable
}

func TestLoopbackExemptByDefault(t *testing.T) {
	s := startServer(t, Config{MaxConnsPerAddr: 1})
	joined(t, s, "a")
	joined(t, s, "b") // loopback: not limited
}

func TestTLS(t *testing.T) {
	cert := testcert.New(t)
	srvTLS, pool := cert.ServerConfig(), cert.Pool
	out := chattest.NewLineLog()
	srv := New(Config{Stdout: out})
	ln, err := Listen(context.Background(), "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-served
	}()
	dialTLS := func(name string) *rawClient {
		nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		c := &rawClient{chattest.New(t, name, nc)}
		c.Join(name)
		out.Wait(t, "join: "+name, 1)
		return c
	}
	alice, bob := dialTLS("alice"), dialTLS("bob")
	alice.Send("secret", "bob")
	bob.Expect(protocol.ForwardMessage, "1 alice secret")
	bob.Write(protocol.AppendJoin(nil, protocol.Disconnect, "bob"))
	bob.ExpectClosed()

	// A client that does not trust the certificate fails the handshake.
	if nc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		nc.Close()
		t.Fatal("handshake with an untrusted certificate succeeded")
	}
}

func TestMetricsCount(t *testing.T) {
	s := startServer(t, Config{})
	alice, bob := joined(t, s, "alice"), joined(t, s, "bob")
	alice.Send("hi", "bob", "alice")
	bob.Expect(protocol.ForwardMessage, "1 alice hi")
	alice.Expect(protocol.ForwardMessage, "1 alice hi")
	if v := metricValue(t, s.Server, "chat_users", "", ""); v != 2 {
		t.Errorf("chat_users = %v, want 2", v)
	}
	if v := metricValue(t, s.Server, "chat_frames_in_total", "type", "send_message"); v != 1 {
		t.Errorf("send_message frames in = %v, want 1", v)
	}
	if v := metricValue(t, s.Server, "chat_frames_out_total", "type", "forward_message"); v != 2 {
		t.Errorf("forward_message frames out = %v, want 2", v)
	}
	bob.Write([]byte("bogus 0 "))
	s.expectKicked(t, bob)
	if v := metricValue(t, s.Server, "chat_disconnects_total", "reason", "protocol error"); v != 1 {
		t.Errorf("protocol error disconnects = %v, want 1", v)
	}
}

// panicHub panics when asked for the user "boom".
type panicHub struct{ *LocalHub }

func (h panicHub) Lookup(name string) Peer {
	if name == "boom" {
		panic("boom")
	}
	return h.LocalHub.Lookup(name)
}

func TestPanicEndsOnlyItsConnection(t *testing.T) {
	s := startServer(t, Config{Hub: panicHub{NewLocalHub()}})
	alice, bob := joined(t, s, "alice"), joined(t, s, "bob")
	alice.Send("hi", "boom")
	alice.ExpectClosed()
	s.out.Wait(t, "disconnected: alice", 1)
	bob.Send("still", "bob")
	bob.Expect(protocol.ForwardMessage, "1 bob still")
}
