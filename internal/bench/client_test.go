package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

func TestStampRoundTrip(t *testing.T) {
	for _, c := range []struct {
		idx int
		t   int64
	}{{0, 0}, {42, 123456789}, {maxStampIdx, 1<<63 - 1}} {
		text := newText(32)
		putStamp(text, c.idx, c.t)
		if strings.Trim(string(text[stampLen:]), "x") != "" {
			t.Fatalf("padding overwritten: %q", text)
		}
		idx, ts, ok := readStamp(text)
		if !ok || idx != c.idx || ts != c.t {
			t.Fatalf("readStamp(%q) = %d %d %v, want %d %d", text, idx, ts, ok, c.idx, c.t)
		}
	}
	for _, bad := range []string{"", "0000001", "0000001000000000000000g", "a000001000000000000000000"} {
		if _, _, ok := readStamp([]byte(bad)); ok {
			t.Errorf("readStamp(%q) ok", bad)
		}
	}
}

func TestForwardText(t *testing.T) {
	cases := map[string]string{"1 alice hi": "hi", "1 bob a b  c": "a b  c", "1 x ": ""}
	for in, want := range cases {
		got, ok := forwardText([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("forwardText(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "1", "2 a b", "1 alice", "10 a b"} {
		if _, ok := forwardText([]byte(bad)); ok {
			t.Errorf("forwardText(%q) ok", bad)
		}
	}
}

func TestRecipientsAndSources(t *testing.T) {
	got := recipients(8, 3, 10)
	if len(got) != 3 || got[0] != 9 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("recipients = %v", got)
	}
	if ip := srcIP(9, 8); !ip.Equal(net.IPv4(127, 0, 0, 3)) {
		t.Fatalf("srcIP = %v", ip)
	}
	if !canUseSrc("127.0.0.1:5") || canUseSrc("[::1]:5") || canUseSrc("localhost:5") {
		t.Fatal("canUseSrc")
	}
}

func TestParseProcFiles(t *testing.T) {
	status := "Name:\tserver\nVmPeak:\t  123 kB\nVmRSS:\t   14520 kB\nThreads: 5\n"
	if v, err := parseStatusKB(status, "VmRSS:"); err != nil || v != 14520<<10 {
		t.Fatalf("VmRSS = %d %v", v, err)
	}
	if _, err := parseStatusKB("VmRSS: 12\n", "VmRSS:"); err == nil {
		t.Fatal("line without unit accepted")
	}
	limits := "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n"
	if v, err := parseOpenFilesLimit(limits); err != nil || v != 20000 {
		t.Fatalf("open files = %d %v", v, err)
	}
	if v, err := parseOpenFilesLimit("Max open files            unlimited            unlimited            files\n"); err != nil || v != -1 {
		t.Fatalf("unlimited = %d %v", v, err)
	}
}

// The measurements behind chatClient's comment on internal/chattest (issue
// 24 item 1): go test -run '^$' -bench 'ClientPath|ForwardText' -benchmem
// ./internal/bench. Each op of BenchmarkClientPath is one 32-byte text from
// one client to another through a server in this process, at most
// clientPathWindow in flight.

const clientPathWindow = 1000

func BenchmarkClientPath(b *testing.B) {
	srv, err := inProcess(100, false)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	b.Run("chatClient", func(b *testing.B) {
		ctx := context.Background()
		prefix := runPrefix()
		var got atomic.Int64
		var conns clientSet
		defer conns.close()
		rcpt, err := conns.dial(ctx, srv.Addr, prefix+"r", 64<<10, 32<<10, handlers{msg: func([]byte) { got.Add(1) }})
		if err != nil {
			b.Fatal(err)
		}
		sender, err := conns.dial(ctx, srv.Addr, prefix+"s", 64<<10, 32<<10, handlers{})
		if err != nil {
			b.Fatal(err)
		}
		if err := waitJoined(ctx, rcpt, prefix, 2, nil); err != nil {
			b.Fatal(err)
		}
		to, text := []string{prefix + "r"}, newText(32)
		b.ResetTimer()
		for i := range int64(b.N) {
			for i-got.Load() >= clientPathWindow {
				if err := sender.w.Flush(); err != nil {
					b.Fatal(err)
				}
				runtime.Gosched()
			}
			if err := sender.writeMessage(to, text); err != nil {
				b.Fatal(err)
			}
		}
		sender.w.Flush()
		for got.Load() < int64(b.N) {
			runtime.Gosched()
		}
	})
	b.Run("chattest", func(b *testing.B) {
		prefix := runPrefix()
		rcpt, sender := chattest.Dial(b, srv.Addr, "r"), chattest.Dial(b, srv.Addr, "s")
		rcpt.Join(prefix + "r")
		sender.Join(prefix + "s")
		for !strings.Contains(sender.List(), prefix+"r") {
		}
		var got atomic.Int64
		done := make(chan error, 1)
		go func() { // the recipient: ReadFrame, not the Expect methods, which may fail the test only on its goroutine
			for n := 0; n < b.N; n++ {
				h, p, err := rcpt.ReadFrame()
				if err == nil && h.Type != protocol.ForwardMessage {
					err = fmt.Errorf("got %s", h.Name)
				}
				if err == nil {
					_, _, err = protocol.ParseForward(p)
				}
				if err != nil {
					done <- err
					return
				}
				got.Add(1)
			}
			done <- nil
		}()
		to, text := prefix+"r", string(newText(32))
		b.ResetTimer()
		for i := range int64(b.N) {
			for i-got.Load() >= clientPathWindow {
				runtime.Gosched()
			}
			sender.Send(text, to)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkForwardText weighs the two ways to take the text out of a
// forward_message payload: bench's, and internal/protocol's, which also
// checks the text and copies out the sender's name.
func BenchmarkForwardText(b *testing.B) {
	p := append([]byte("1 b12345_67 "), newText(32)...)
	b.Run("forwardText", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := forwardText(p); !ok {
				b.Fatal("not a forward")
			}
		}
	})
	b.Run("protocol.ParseForward", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := protocol.ParseForward(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
