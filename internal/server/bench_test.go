package server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

// Routing hot-path benchmarks: a real server in this process, clients over
// loopback TCP. None runs in a plain `go test`; run them with
// `go test -run '^$' -bench . ./internal/server`.

type benchServer struct {
	srv  *server.Server
	addr string
	done chan struct{}
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	srv := server.New(server.Config{MaxClients: 1 << 16, Stdout: io.Discard, FloodRate: -1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &benchServer{srv: srv, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		srv.Serve(ln)
		close(s.done)
	}()
	return s
}

func (s *benchServer) stop(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		b.Error(err)
	}
	<-s.done
}

type benchClient struct {
	nc net.Conn
	w  *bufio.Writer
	r  *protocol.Reader
}

func (s *benchServer) join(b *testing.B, name string) *benchClient {
	b.Helper()
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{nc: nc, w: bufio.NewWriterSize(nc, 32<<10), r: protocol.NewReader(nc)}
	c.w.Write(protocol.AppendJoin(nil, protocol.Join, name))
	c.w.Flush()
	return c
}

// waitUsers polls the user list over c until it has n names.
func (c *benchClient) waitUsers(b *testing.B, n int) {
	b.Helper()
	for {
		c.w.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
		c.w.Flush()
		h, err := c.r.ReadHeader()
		if err != nil || h.Type != protocol.ResponseUsersList {
			b.Fatalf("waiting for the user list: %v %v", h, err)
		}
		p, err := c.r.ReadPayload(nil)
		if err != nil {
			b.Fatal(err)
		}
		if bytes.Count(p, []byte{' '}) >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkRoute measures the server's cost per send_message: one sender,
// R recipients, each op is one message in and R forwards out (with the
// server's stdout line). The sender keeps at most `window` messages
// unanswered so that no send queue overflows.
func BenchmarkRoute(b *testing.B) {
	for _, c := range []struct{ rcpts, size int }{{1, 32}, {16, 32}, {1, 4096}} {
		b.Run("recipients="+strconv.Itoa(c.rcpts)+"/size="+strconv.Itoa(c.size), func(b *testing.B) {
			benchRoute(b, c.rcpts, c.size)
		})
	}
}

func benchRoute(b *testing.B, rcpts, size int) {
	window := int64(min(2000, (1<<20)/(size+64))) // at most ~1 MiB queued per recipient
	every := max(window/4, 1)                     // how often recipients report progress
	s := startBenchServer(b)
	defer s.stop(b)
	sender := s.join(b, "sender")
	defer sender.nc.Close()
	names := make([]string, rcpts)
	recv := make([]*benchClient, rcpts)
	for i := range recv {
		names[i] = "r" + strconv.Itoa(i)
		recv[i] = s.join(b, names[i])
		defer recv[i].nc.Close()
	}
	sender.waitUsers(b, rcpts+1)

	var slowest atomic.Int64 // messages received by the slowest recipient
	counts := make([]atomic.Int64, rcpts)
	progress := make(chan struct{}, 1)
	var wg sync.WaitGroup
	n := int64(b.N)
	for i, c := range recv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for got := int64(0); got < n; {
				h, err := c.r.ReadHeader()
				if err != nil || h.Type != protocol.ForwardMessage {
					b.Errorf("recipient %d: %v %v", i, h, err)
					return
				}
				if buf, err = c.r.ReadPayload(buf); err != nil {
					b.Error(err)
					return
				}
				got++
				counts[i].Store(got)
				if got%every == 0 || got == n {
					low := got
					for k := range counts {
						low = min(low, counts[k].Load())
					}
					if low > slowest.Load() {
						slowest.Store(low)
						select {
						case progress <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	frame := protocol.AppendMessage(nil, protocol.SendMessage, names, bytes.Repeat([]byte{'x'}, size))
	b.SetBytes(int64(size * rcpts))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := int64(0); sent < n; sent++ {
		for sent-slowest.Load() >= window {
			sender.w.Flush()
			select {
			case <-progress:
			case <-time.After(10 * time.Millisecond):
			}
		}
		sender.w.Write(frame)
	}
	sender.w.Flush()
	wg.Wait()
	b.StopTimer()
}

// nopPeer is a Peer with a name only (its other methods are never called
// here), to time the registry alone.
type nopPeer struct {
	server.Peer
	name string
}

func (p *nopPeer) Name() string { return p.name }

// BenchmarkHubLookup times the registry lookup every delivery makes, from
// both cores at once, with 10,000 users joined.
func BenchmarkHubLookup(b *testing.B) {
	h := server.NewLocalHub()
	const users = 10000
	for i := range users {
		if err := h.Join(&nopPeer{name: "u" + strconv.Itoa(i)}, users); err != nil {
			b.Fatal(err)
		}
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if h.Lookup("u"+strconv.Itoa(i%users)) == nil {
				b.Fatal("missing user")
			}
			i++
		}
	})
}

// BenchmarkOnlineAtJoin times what the online extension adds to a join in
// a join storm, when the list is longest (onlineLimit users with the
// newcomer): each op is a join to a hub of 99 users and a leave, which
// leave the hub's sorted list stale, with (list=true) the sorted list and
// the online frame made from it, as the server makes them for a client
// that asked for online.
func BenchmarkOnlineAtJoin(b *testing.B) {
	for _, list := range []bool{false, true} {
		b.Run("list="+strconv.FormatBool(list), func(b *testing.B) {
			h := server.NewLocalHub()
			for i := range 99 {
				if err := h.Join(&nopPeer{name: "user" + strconv.Itoa(i)}, 1<<16); err != nil {
					b.Fatal(err)
				}
			}
			p := &nopPeer{name: "newcomer"}
			var frame []byte
			for b.Loop() {
				if err := h.Join(p, 1<<16); err != nil {
					b.Fatal(err)
				}
				if list && h.Len() <= 100 {
					names := h.Users()
					frame = protocol.AppendOnline(frame[:0], len(names), names)
				}
				h.Leave(p)
			}
		})
	}
}
