package client

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// TestTryAgainRetries: a server that cannot decide the join now (a
// cluster without a majority) answers try_again; the client says so on
// stderr, waits, connects again and joins, and the session goes on
// (issue 21). Before, such a join was closed without a word and the
// client printed "disconnected: connection to server lost".
func TestTryAgainRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() {
		ln.Close()
		wg.Wait()
	}()
	joins := make(chan string, 4)
	wg.Go(func() {
		for attempt := 0; ; attempt++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(waitTimeout))
				r := protocol.NewReader(nc)
				h, err := r.ReadHeader()
				if err != nil || h.Type != protocol.ExtHello {
					return
				}
				p, _ := r.ReadPayload(nil)
				features, _ := protocol.ParseFeatures(p)
				nc.Write(protocol.AppendExtHello(nil, features))
				if h, err = r.ReadHeader(); err != nil || h.Type != protocol.Join {
					return
				}
				p, _ = r.ReadPayload(nil)
				joins <- string(p)
				if attempt == 0 {
					nc.Write(protocol.AppendTryAgain(nil, 10*time.Millisecond))
					return
				}
				nc.Write(protocol.AppendEmpty(nil, protocol.JoinOK))
				nc.Write(protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"bob"}, []byte("hello")))
				r.ReadHeader() // until the client goes
			})
		}
	})
	s := startExtClient(t, ln.Addr().String())
	waitFor(t, s.stdout, "msg: bob: hello\n")
	for i := range 2 {
		select {
		case name := <-joins:
			if name != "me" {
				t.Fatalf("join %d as %q", i, name)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("join %d never came", i)
		}
	}
	if want := "trying again in"; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("stderr %q does not say %q", s.stderr.String(), want)
	}
	s.input(t, "quit")
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d, want 0", c)
	}
	if got, want := s.stdout.String(), "msg: bob: hello\nquitting\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

func TestRetryWait(t *testing.T) {
	for _, tc := range []struct{ asked, last, lo, hi time.Duration }{
		{0, 0, 500 * time.Millisecond, 750 * time.Millisecond},
		{1500 * time.Millisecond, 0, 1500 * time.Millisecond, 2250 * time.Millisecond},
		{time.Second, 4 * time.Second, 8 * time.Second, 12 * time.Second},
		{time.Second, time.Minute, maxRetryWait, maxRetryWait * 3 / 2},
	} {
		for range 50 {
			if d := retryWait(tc.asked, tc.last); d < tc.lo || d > tc.hi {
				t.Fatalf("retryWait(%v, %v) = %v, want within [%v, %v]", tc.asked, tc.last, d, tc.lo, tc.hi)
			}
		}
	}
}
