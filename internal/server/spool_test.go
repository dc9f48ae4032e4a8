package server

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// TestSenderNotHeldByStalledRecipient: a sender whose file's recipient
// takes whole frames and reads nothing gets its next message to somebody
// else through at once, not once the stalled recipient is cut off (issue
// 19, part 4: 29.6 s with the defaults). The server used to pace the
// sender's reading to that recipient, so everything after the file waited
// for the stall timeout.
func TestSenderNotHeldByStalledRecipient(t *testing.T) {
	for _, how := range []string{"send_file", "upload"} {
		t.Run(how, func(t *testing.T) {
			s := startServer(t, Config{StallTimeout: 5 * time.Second})
			bob := joined(t, s, "bob") // never reads
			bob.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
			carol := joined(t, s, "carol")
			data := make([]byte, 8<<20)
			msg := protocol.AppendMessage(nil, protocol.SendMessage, []string{"carol"}, []byte("hi carol"))
			var alice *rawClient
			if how == "send_file" {
				alice = joined(t, s, "alice")
				frames := append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "big.bin", int64(len(data))), data...)
				go alice.NC.Write(append(frames, msg...)) // the file, then the message
			} else {
				alice = uploader(t, s, "alice")
				alice.beginUpload(1, []string{"bob"}, "big.bin", int64(len(data)))
				var f uploadFrames
				alice.sendChunks(1, data, 0, len(data), &f)
				alice.Write(protocol.AppendFileID(nil, protocol.FileEnd, 1))
				alice.Write(msg)
			}
			carol.Expect(protocol.ForwardMessage, "1 alice hi carol")
			if s.out.Count("disconnected: bob") != 0 {
				t.Fatal("alice's message to carol waited until bob was cut off")
			}
			s.out.Wait(t, "disconnected: bob", 1) // his forward_file stalls
			waitSpoolsEmpty(t, s.Server)
		})
	}
}

// crawl writes frames (one every interval) on c until stop is closed or
// a write fails, and closes done when it ends.
func crawl(c *rawClient, frame []byte, interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := c.NC.Write(frame); err != nil {
			return
		}
	}
}

// TestCrawlingFileHoldsNoMessage: a send_file that crawls (300 KiB, then
// a byte at a time, which the stall timeout allows) holds no message to
// its recipients: one that takes whole frames is sent nothing of the file
// until it is whole, a chunked one gets chunks between other frames. Its
// sender, below the minimum rate over a window, is cut off (log line,
// metric); the plain recipient keeps its connection, the chunked one gets
// file_abort. Before, the plain recipient's forward_file started at once,
// every message to it waited behind the file, and the sender's end cut
// it off (issue 19, part 5).
func TestCrawlingFileHoldsNoMessage(t *testing.T) {
	var logs logBuffer
	// Alice crawls on after she is cut off: the server's linger ends her
	// connection (closeLinger, shortened from 2 s).
	s := startServer(t, Config{StallTimeout: 5 * time.Second, MinUploadRate: 1 << 10, MinUploadWindow: 500 * time.Millisecond, Logger: logs.logger(slog.LevelInfo), closeLinger: 100 * time.Millisecond})
	alice, bob, bea, carol := joined(t, s, "alice"), joined(t, s, "bob"), joinedExt(t, s, "bea"), joined(t, s, "carol")
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "bea"}, "big.bin", 1<<20))
	alice.Write(make([]byte, 300<<10))
	stop, crawled := make(chan struct{}), make(chan struct{})
	go crawl(alice, []byte{'x'}, 20*time.Millisecond, stop, crawled)
	defer func() { close(stop); <-crawled }()

	carol.Send("hi", "bob", "bea")
	bob.Expect(protocol.ForwardMessage, "1 carol hi")
	var beaSaw []string
	for len(beaSaw) == 0 || beaSaw[len(beaSaw)-1] != "forward_message 1 carol hi" {
		h, p := bea.Frame()
		beaSaw = append(beaSaw, h.Name+" "+string(p[:min(len(p), 32)]))
	}
	if s.out.Count("disconnected: alice") != 0 {
		t.Fatal("the messages came only once alice was cut off")
	}

	s.out.Wait(t, "disconnected: alice", 1)
	logs.wait(t, "file sender below the minimum rate", "user=alice", "file=big.bin")
	logs.wait(t, "connection closed", "user=alice", `reason="file sender below the minimum rate"`)
	if v := metricValue(t, s.Server, "chat_slow_file_senders_total", "", ""); v != 1 {
		t.Errorf("slow file senders = %v, want 1", v)
	}
	bea.expectFileAbort()
	carol.Send("still there?", "bob")
	bob.Expect(protocol.ForwardMessage, "1 carol still there?")
	if s.out.Count("disconnected: bob") != 0 || s.out.Count("disconnected: bea") != 0 {
		t.Fatalf("a recipient was cut off: %q", s.out.Lines())
	}
	waitSpoolsEmpty(t, s.Server)
}

// TestSlowUploadGivenUp: an upload below the minimum rate over a window
// is given up (file_result naming nobody, a log line, the metric); its
// sender chats on, a chunked recipient gets file_abort, a plain one
// nothing.
func TestSlowUploadGivenUp(t *testing.T) {
	var logs logBuffer
	s := startServer(t, Config{StallTimeout: 5 * time.Second, MinUploadRate: 1 << 10, MinUploadWindow: 500 * time.Millisecond, Logger: logs.logger(slog.LevelInfo)})
	bob, bea, alice := joined(t, s, "bob"), joinedExt(t, s, "bea"), uploader(t, s, "alice")
	alice.beginUpload(1, []string{"bob", "bea"}, "big.bin", 1<<20)
	var f uploadFrames
	data := make([]byte, 300<<10)
	alice.sendChunks(1, data, 0, len(data), &f)
	stop, crawled := make(chan struct{}), make(chan struct{})
	go crawl(alice, append(protocol.ChunkHeader(nil, 1, 1), 'x'), 20*time.Millisecond, stop, crawled)
	for !f.done {
		alice.readUpload(1, &f)
	}
	close(stop)
	<-crawled
	if len(f.result) != 0 {
		t.Fatalf("file_result %q, want nobody", f.result)
	}
	logs.wait(t, "upload below the minimum rate", "user=alice", "file=big.bin")
	if v := metricValue(t, s.Server, "chat_slow_file_senders_total", "", ""); v != 1 {
		t.Errorf("slow file senders = %v, want 1", v)
	}
	if _, ok, _ := bea.readChunked(); ok {
		t.Fatal("bea's copy ended with file_end")
	}
	alice.Send("still here", "bob", "bea")
	bob.Expect(protocol.ForwardMessage, "1 alice still here")
	bea.Expect(protocol.ForwardMessage, "1 alice still here")
	waitSpoolsEmpty(t, s.Server)
}

// TestSpoolOnDisk: a file held on disk reaches its plain recipients
// whole and in order with the rest; no spool file is visible in the spool
// folder while it is held (on Unix it is removed as it is made), and its
// space is given back once written, when a recipient leaves before the
// file is whole, and when the sender leaves mid-file.
func TestSpoolOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, Config{SpoolDir: dir, SpoolMemoryBytes: 1})
	alice, bob, carol, dan := joined(t, s, "alice"), joined(t, s, "bob"), joined(t, s, "carol"), joined(t, s, "dan")
	content := bytes.Repeat([]byte("0123456789abcdef\x00\xff\n"), 150000) // 2.9 MB
	head := protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "carol", "dan"}, "big.bin", int64(len(content)))
	alice.Write(append(head, content[:1<<20]...))
	chattest.WaitUntil(t, "the file is spooled on disk", func() bool {
		s.spoolMu.Lock()
		defer s.spoolMu.Unlock()
		// Registered only once its file is made (and removed): the
		// space is counted before.
		return s.spoolDisk == int64(len(content)) && len(s.spools) == 1
	})
	if removeWhileOpen {
		if names := chattest.DirNames(t, dir); len(names) != 0 {
			t.Fatalf("spool folder holds %q while the file is spooled", names)
		}
	}
	dan.NC.Close() // a recipient leaves mid-file
	s.out.Wait(t, "disconnected: dan", 1)
	alice.Write(content[1<<20:])
	alice.Send("after", "bob")
	for _, c := range []*rawClient{bob, carol} {
		if from, name, got := c.readForwardFile(); from != "alice" || name != "big.bin" || !bytes.Equal(got, content) {
			t.Fatalf("got %s from %s (%d bytes), want alice's big.bin whole", name, from, len(got))
		}
	}
	bob.Expect(protocol.ForwardMessage, "1 alice after")
	waitSpoolsEmpty(t, s.Server)

	// The sender leaves mid-file.
	alice.Write(append(head, content[:1<<20]...))
	chattest.WaitUntil(t, "the file is spooled on disk", func() bool {
		s.spoolMu.Lock()
		defer s.spoolMu.Unlock()
		return s.spoolDisk > 0
	})
	alice.NC.Close()
	s.out.Wait(t, "disconnected: alice", 1)
	waitSpoolsEmpty(t, s.Server)
	carol.Send("no file", "bob")
	bob.Expect(protocol.ForwardMessage, "1 carol no file")
	if names := chattest.DirNames(t, dir); len(names) != 0 {
		t.Fatalf("spool folder holds %q", names)
	}
}

// TestSpoolRefusals: a file the spool cannot hold does not reach the
// recipients taking whole frames (a warning in the log, a metric), who
// stay; chunked recipients get it. Refused for --spool-max, and for a
// spool folder that cannot take files.
func TestSpoolRefusals(t *testing.T) {
	for _, c := range []struct {
		name, metric, logged string
		cfg                  Config
	}{
		{"full", "chat_spool_refused_total", "spool for files is full", Config{SpoolMaxBytes: 1 << 20, SpoolMemoryBytes: 1}},
		{"no folder", "chat_spool_failures_total", "spooling a file", Config{SpoolDir: filepath.Join(t.TempDir(), "gone"), SpoolMemoryBytes: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs logBuffer
			c.cfg.Logger = logs.logger(slog.LevelWarn)
			s := startServer(t, c.cfg)
			alice, bob, bea := joined(t, s, "alice"), joined(t, s, "bob"), joinedExt(t, s, "bea")
			content := make([]byte, 2<<20)
			alice.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "bea"}, "big.bin", int64(len(content))), content...))
			if got, ok, _ := bea.readChunked(); !ok || len(got) != len(content) {
				t.Fatalf("bea got %d bytes (end %v)", len(got), ok)
			}
			logs.wait(t, "file not delivered to a user", "to=bob", c.logged)
			if v := metricValue(t, s.Server, c.metric, "", ""); v != 1 {
				t.Errorf("%s = %v, want 1", c.metric, v)
			}
			alice.Send("no file", "bob")
			bob.Expect(protocol.ForwardMessage, "1 alice no file")
			waitSpoolsEmpty(t, s.Server)
		})
	}
}

// TestSpoolWriteFails: a spool whose file fails mid-file fails every
// stream of it, counts and logs the failure, and is given back.
func TestSpoolWriteFails(t *testing.T) {
	var logs logBuffer
	srv := New(Config{SpoolDir: t.TempDir(), SpoolMemoryBytes: 1, Logger: logs.logger(slog.LevelWarn)})
	bob, carol := pipeConn(t, srv, "bob"), pipeConn(t, srv, "carol")
	head := FileHead{ID: 9, Sender: "alice", Filename: "f", Size: 10}
	never := make(chan struct{})
	var streams []FileStream
	for _, p := range []*conn{bob, carol} {
		st, err := p.OpenFile(head, never)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	if err := streams[0].Write(Chunk{ID: 9, Data: []byte("12345")}); err != nil {
		t.Fatal(err)
	}
	if err := streams[1].Write(Chunk{ID: 9, Data: []byte("12345")}); err != nil {
		t.Fatal(err)
	}
	streams[0].(*spoolStream).sp.f.Close() // the disk fails
	for _, st := range streams {
		if err := st.Write(Chunk{ID: 9, Data: []byte("67890")}); err == nil {
			t.Fatal("a write to a failed spool succeeded")
		}
		st.Abort()
	}
	if !strings.Contains(logs.String(), "cannot hold a file") {
		t.Fatalf("log:\n%s", logs.String())
	}
	if v := metricValue(t, srv, "chat_spool_failures_total", "", ""); v != 1 {
		t.Errorf("spool failures = %v, want 1", v)
	}
	waitSpoolsEmpty(t, srv)
	for _, p := range []*conn{bob, carol} {
		if isClosed(p.done) || p.q.queuedBytes() != 0 {
			t.Fatalf("%s: cut off %v, %d bytes queued", p.name, isClosed(p.done), p.q.queuedBytes())
		}
	}
}

// TestShutdownMidSpool: a server shut down while it holds a file on
// disk, for a recipient that reads nothing of what it was sent, gives
// every spool back.
func TestShutdownMidSpool(t *testing.T) {
	dir := t.TempDir()
	srv := New(Config{Stdout: chattest.NewLineLog(), SpoolDir: dir, SpoolMemoryBytes: 1})
	addr, served := listenAndServe(t, srv, nil)
	s := &testServer{Server: srv, addr: addr, out: srv.cfg.Stdout.(*chattest.LineLog)}
	alice, bob := joined(t, s, "alice"), joined(t, s, "bob")
	joined(t, s, "carol")
	bob.NC.(*net.TCPConn).SetReadBuffer(4 << 10)
	// One whole file queued for bob, who reads nothing, and one still
	// coming for carol.
	content := make([]byte, 4<<20)
	alice.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "a.bin", int64(len(content))), content...))
	alice.Write(append(protocol.AppendFileHead(nil, protocol.SendFile, []string{"carol"}, "b.bin", int64(len(content))), content[:1<<20]...))
	chattest.WaitUntil(t, "both files are spooled", func() bool {
		srv.spoolMu.Lock()
		defer srv.spoolMu.Unlock()
		return srv.spoolDisk == 2*int64(len(content))
	})
	stopServer(t, srv, served)
	srv.spoolMu.Lock()
	disk, mem, open := srv.spoolDisk, srv.spoolMem, len(srv.spools)
	srv.spoolMu.Unlock()
	if disk != 0 || mem != 0 || open != 0 {
		t.Fatalf("after shutdown: %d bytes on disk, %d in memory, %d spools open", disk, mem, open)
	}
	if names := chattest.DirNames(t, dir); len(names) != 0 {
		t.Fatalf("spool folder holds %q", names)
	}
}

// TestSweepSpools: spool files an earlier run left are removed at start,
// and nothing else.
func TestSweepSpools(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"gochatd-spool-123", "gochatd-spool-x", "keep.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	New(Config{SpoolDir: dir})
	if names := chattest.DirNames(t, dir); !slices.Equal(names, []string{"keep.txt"}) {
		t.Fatalf("left %q, want [keep.txt]", names)
	}
}

// TestRateFloor: a window is judged by the bytes per second of waiting it
// brought; the zero rate judges nobody.
func TestRateFloor(t *testing.T) {
	for _, c := range []struct {
		name  string
		steps []struct {
			d time.Duration
			n int64
		}
		slowAt int // index of the step that fails, -1 for none
	}{
		{"fast", []struct {
			d time.Duration
			n int64
		}{{time.Second, 2000}, {time.Second, 2000}}, -1},
		{"crawl", []struct {
			d time.Duration
			n int64
		}{{time.Second, 300}, {time.Second, 1}}, 1},
		{"burst earns its window", []struct {
			d time.Duration
			n int64
		}{{0, 5000}, {1500 * time.Millisecond, 1}, {time.Second, 1}, {time.Second, 1}, {time.Second, 1}}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rateFloor{min: 1000, window: 2 * time.Second}
			for i, st := range c.steps {
				if slow := r.add(st.d, st.n); slow != (i == c.slowAt) {
					t.Fatalf("step %d: slow %v", i, slow)
				}
			}
		})
	}
	off := rateFloor{window: time.Second}
	if off.add(time.Hour, 0) {
		t.Fatal("the zero rate judged a sender")
	}
}
