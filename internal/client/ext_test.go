package client

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

func startExtClient(t *testing.T, addr string) *session {
	t.Helper()
	pr, pw := io.Pipe()
	s := &session{stdin: pw, stdout: &syncBuffer{}, stderr: &syncBuffer{}, dir: t.TempDir(), code: make(chan int, 1)}
	go func() {
		s.code <- Run(context.Background(), Config{
			User: "me", Addr: addr, DownloadDir: s.dir, Extensions: true,
			Stdin: pr, Stdout: s.stdout, Stderr: s.stderr,
		})
		pr.Close()
	}()
	t.Cleanup(func() { pw.Close() })
	return s
}

func TestChunkedFilesWithRealServer(t *testing.T) {
	srv := server.New(server.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-served
	}()

	s := startExtClient(t, ln.Addr().String())
	sender, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	sender.Write(protocol.AppendJoin(nil, protocol.Join, "bob"))
	// Wait until "me" has joined: bob's list shows both.
	r := protocol.NewReader(sender)
	for {
		sender.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
		sender.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		p, _ := r.ReadPayload(nil)
		if string(p) == "2 bob me" {
			break
		}
	}
	content := bytes.Repeat([]byte{0, 1, 2, 3, 254, 255, '\n', ' '}, 400000) // 3.2 MB
	frames := protocol.AppendFileHead(nil, protocol.SendFile, []string{"me"}, "big.bin", int64(len(content)))
	frames = append(frames, content...)
	frames = protocol.AppendMessage(frames, protocol.SendMessage, []string{"me"}, []byte("after"))
	sender.Write(frames)

	waitFor(t, s.stdout, "msg: bob: after\n")
	s.stdin.Close()
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	if got := s.stdout.String(); got != "file: bob: big.bin\nmsg: bob: after\nquitting\n" {
		t.Errorf("stdout %q", got)
	}
	got, err := os.ReadFile(filepath.Join(s.dir, "me_big.bin"))
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("saved file differs (%v)", err)
	}
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
	waitFor(t, s.stdout, "msg: bob: plain\n")
	s.stdin.Close()
	if c := s.exit(t); c != 0 {
		t.Errorf("exit %d", c)
	}
	ln.Close()
	if firsts := <-done; len(firsts) != 2 || firsts[0] != "ext_hello" || firsts[1] != "join" {
		t.Errorf("first frames %v, want [ext_hello join]", firsts)
	}
}
