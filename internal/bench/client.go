package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// A message text starts with a stamp: the sender's index (7 decimal
// digits) and the send time (16 hex digits of nanoseconds), then 'x'
// padding to the text size. The same bytes are the payload of the
// baseline's messages.
const (
	stampIdxLen = 7
	stampLen    = stampIdxLen + 16
	maxStampIdx = 9_999_999
)

// base is the origin of the monotonic clock of stamps (all within one
// process).
var base = time.Now()

// now returns monotonic nanoseconds since base.
func now() int64 { return int64(time.Since(base)) }

// newText returns a text of size bytes ready for putStamp.
func newText(size int) []byte { return bytes.Repeat([]byte{'x'}, size) }

// putStamp writes idx and t at the front of text (len >= stampLen).
func putStamp(text []byte, idx int, t int64) {
	for i := stampIdxLen - 1; i >= 0; i-- {
		text[i] = byte('0' + idx%10)
		idx /= 10
	}
	const hex = "0123456789abcdef"
	u := uint64(t)
	for i := stampLen - 1; i >= stampIdxLen; i-- {
		text[i] = hex[u&15]
		u >>= 4
	}
}

// readStamp decodes what putStamp wrote.
func readStamp(text []byte) (idx int, t int64, ok bool) {
	if len(text) < stampLen {
		return 0, 0, false
	}
	for _, c := range text[:stampIdxLen] {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		idx = idx*10 + int(c-'0')
	}
	var u uint64
	for _, c := range text[stampIdxLen:stampLen] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, 0, false
		}
		u = u<<4 | uint64(d)
	}
	return idx, int64(u), true
}

// forwardText returns the text of a forward_message payload
// `1 <sender> <text>`.
func forwardText(p []byte) ([]byte, bool) {
	if len(p) < 2 || p[0] != '1' || p[1] != ' ' {
		return nil, false
	}
	i := bytes.IndexByte(p[2:], ' ')
	if i < 0 {
		return nil, false
	}
	return p[2+i+1:], true
}

// srcIP returns the i-th source address, 127.0.0.2 and up, of k.
func srcIP(i, k int) net.IP {
	return net.IPv4(127, 0, 0, byte(2+i%k))
}

// canUseSrc reports whether connections to addr may come from 127.0.0.x
// source addresses (addr is an IPv4 loopback address).
func canUseSrc(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() != nil && ip.IsLoopback()
}

// chatClient is one benchmark connection speaking the chat protocol.
//
// It is not internal/chattest's Conn, the project's test client (issue 24
// item 1 asked whether it could be), because the two do opposite jobs.
// A Conn belongs to a test: every failure fails the test (t.Fatalf, which
// must run on the test's goroutine), every read and write sets a deadline,
// every Send is one write, and every frame read is a fresh allocation. A
// chatClient is the measuring tool's hot path: thousands of them, each
// read on a goroutine of its own, where an error is an outcome to count
// (a refused join, a closed connection) and frames go out through a
// bufio.Writer flushed once per window, as the real client batches them,
// so that the figures are the server's and not the tool's syscalls.
// BenchmarkClientPath (client_test.go) measures the difference; the
// figures are in docs/PERFORMANCE.md ("The bench client and
// internal/chattest"). The frame code itself is shared: both build and
// read frames with internal/protocol (AppendJoin, AppendMessage, Reader,
// ReadFileHead, the chunk parsers). Only forwardText is the tool's own:
// protocol.ParseForward also validates the text and copies the sender's
// name out, which BenchmarkForwardText weighs.
type chatClient struct {
	name  string
	nc    net.Conn
	w     *bufio.Writer
	r     *protocol.Reader
	frame []byte
	lists chan []byte   // response_users_list payloads
	ended chan struct{} // closed when readLoop returns
}

// dialChat connects to addr (from src if not nil) and sends join, after
// an ext_hello asking for features if there are any.
func dialChat(ctx context.Context, addr string, src net.IP, name string, rbuf, wbuf int, features ...string) (*chatClient, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return startChat(nc, name, rbuf, wbuf, features...)
}

// startChat starts a chat client on the connection nc: it sends join,
// after an ext_hello asking for features if there are any.
func startChat(nc net.Conn, name string, rbuf, wbuf int, features ...string) (*chatClient, error) {
	c := &chatClient{
		name:  name,
		nc:    nc,
		w:     bufio.NewWriterSize(nc, wbuf),
		r:     protocol.NewReaderSize(nc, rbuf),
		lists: make(chan []byte, 1),
		ended: make(chan struct{}),
	}
	var hello []byte
	if len(features) > 0 {
		hello = protocol.AppendExtHello(nil, features)
	}
	if _, err := nc.Write(protocol.AppendJoin(hello, protocol.Join, name)); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// clientSet is chat clients each reading what comes to it on a goroutine
// of the set's, until close.
type clientSet struct {
	clients []*chatClient
	wg      sync.WaitGroup
}

// dial joins a client to addr as name (dialChat) whose read loop hands
// what arrives to h.
func (s *clientSet) dial(ctx context.Context, addr, name string, rbuf, wbuf int, h handlers, features ...string) (*chatClient, error) {
	c, err := dialChat(ctx, addr, nil, name, rbuf, wbuf, features...)
	if err != nil {
		return nil, err
	}
	s.clients = append(s.clients, c)
	s.wg.Go(func() { c.readLoop(h) })
	return c, nil
}

// close closes every client and waits for their read loops.
func (s *clientSet) close() {
	for _, c := range s.clients {
		c.nc.Close()
	}
	s.wg.Wait()
}

// writeMessage buffers a send_message frame.
func (c *chatClient) writeMessage(names []string, text []byte) error {
	c.frame = protocol.AppendMessage(c.frame[:0], protocol.SendMessage, names, text)
	_, err := c.w.Write(c.frame)
	return err
}

// handlers are what a read loop does with what arrives.
type handlers struct {
	msg  func(text []byte)                                // forward_message
	file func(sender, filename string, r io.Reader) error // forward_file: r yields the content
	// The chunked-file extension's frames.
	fileBegin func(id uint64, size int64)
	fileChunk func(id uint64, n int)
	fileEnd   func(id uint64, aborted bool)
}

// errServer reports an err_* frame.
type errServer struct{ name string }

func (e errServer) Error() string { return "server sent " + e.name }

// readLoop reads frames until the connection ends. It is called once.
func (c *chatClient) readLoop(h handlers) error {
	defer close(c.ended)
	var buf []byte
	for {
		hd, err := c.r.ReadHeader()
		if err != nil {
			return err
		}
		switch hd.Type {
		case protocol.ForwardMessage:
			if hd.Length > protocol.MaxListBytes+1+protocol.MaxTextBytes {
				return fmt.Errorf("forward_message of %d bytes", hd.Length)
			}
			buf, err = c.r.ReadPayload(buf)
			if err != nil {
				return err
			}
			if text, ok := forwardText(buf); ok && h.msg != nil {
				h.msg(text)
			}
		case protocol.ResponseUsersList:
			if hd.Length > 1<<28 {
				return fmt.Errorf("response_users_list of %d bytes", hd.Length)
			}
			p, err := c.r.ReadPayload(nil)
			if err != nil {
				return err
			}
			select {
			case c.lists <- p:
			default:
			}
		case protocol.ForwardFile:
			names, filename, err := protocol.ReadFileHead(c.r, 1, 1)
			if err != nil {
				return err
			}
			if h.file != nil {
				if err := h.file(names[0], filename, c.r); err != nil {
					return err
				}
			}
		case protocol.FileBegin, protocol.FileChunk, protocol.FileEnd, protocol.FileAbort:
			if hd.Length > protocol.MaxChunkData+64 {
				return fmt.Errorf("%s of %d bytes", hd.Name, hd.Length)
			}
			buf, err = c.r.ReadPayload(buf)
			if err != nil {
				return err
			}
			if err := h.chunked(hd.Type, buf); err != nil {
				return err
			}
		case protocol.Ping:
			// Answered at once, past the writer: the scale clients
			// that ask for heartbeat write nothing else between
			// rounds, and a round's frame is one write (scaleidle.go).
			if _, err := c.nc.Write(protocol.PongFrame); err != nil {
				return err
			}
		case protocol.ErrUnknownMessage, protocol.ErrServerFull, protocol.ErrUsernameUnavailable:
			return errServer{hd.Name}
		}
	}
}

// chunked handles a frame of the chunked-file extension.
func (h handlers) chunked(t protocol.Type, p []byte) error {
	switch t {
	case protocol.FileBegin:
		id, _, _, size, err := protocol.ParseFileBegin(p)
		if err != nil {
			return err
		}
		if h.fileBegin != nil {
			h.fileBegin(id, size)
		}
	case protocol.FileChunk:
		id, data, err := protocol.ParseChunk(p)
		if err != nil {
			return err
		}
		if h.fileChunk != nil {
			h.fileChunk(id, len(data))
		}
	default:
		id, err := protocol.ParseFileID(p)
		if err != nil {
			return err
		}
		if h.fileEnd != nil {
			h.fileEnd(id, t == protocol.FileAbort)
		}
	}
	return nil
}

// countJoined asks for the user list over c (whose read loop runs) and
// returns how many names start with prefix.
func (c *chatClient) countJoined(ctx context.Context, prefix string) (int, error) {
	if _, err := c.w.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList)); err != nil {
		return 0, err
	}
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	select {
	case <-c.ended:
		return 0, errors.New("the server closed the connection (was the join refused?)")
	case p := <-c.lists:
		n := 0
		for i, f := range bytes.Split(p, []byte{' '}) {
			if i > 0 && bytes.HasPrefix(f, []byte(prefix)) {
				n++
			}
		}
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// waitJoined polls the user list over c until want names start with
// prefix. It polls less often for long lists, which cost the server a
// sort whenever someone joined. If report is not nil, it gets the count
// every few seconds.
func waitJoined(ctx context.Context, c *chatClient, prefix string, want int, report func(seen int)) error {
	every := 20*time.Millisecond + time.Duration(want)*5*time.Microsecond
	last := -1
	lastReport := time.Now()
	for {
		n, err := c.countJoined(ctx, prefix)
		if err != nil {
			return fmt.Errorf("waiting for %d joins (saw %d): %w", want, last, err)
		}
		if n >= want {
			return nil
		}
		last = n
		if report != nil && time.Since(lastReport) >= 5*time.Second {
			report(n)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d joins (saw %d): %w", want, last, ctx.Err())
		case <-time.After(every):
		}
	}
}

// parallel runs f(0..n-1) on at most width goroutines and returns the
// first error.
func parallel(n, width int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range min(width, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// sink receives every delivered text: recv is the receiving client's
// index. It is called from one goroutine per receiver at a time.
type sink func(recv int, text []byte)

// system is a message system under test: ours or a baseline.
type system interface {
	Name() string
	// Connect connects n clients, each able to receive, and returns once
	// all of them can be sent to.
	Connect(ctx context.Context, n int, s sink) error
	// Sender returns the functions that send a text from client i to the
	// clients rcpts, and push what is buffered onto the wire. They may be
	// used by one goroutine at a time.
	Sender(i int, rcpts []int) (send func(text []byte) error, flush func() error)
	// Close disconnects every client.
	Close()
}

// chatSystem is our chat server, reached at addrs: one server, or the
// nodes of a cluster.
type chatSystem struct {
	addrs    []string
	place    func(i int) int // index in addrs of client i's node
	prefix   string
	srcAddrs int
	rbuf     int
	wbuf     int

	// dial, if set, connects client i instead of a TCP connection to
	// addr (the WebSocket clients of the web workload).
	dial func(ctx context.Context, name string) (*chatClient, error)

	clients []*chatClient
	wg      sync.WaitGroup
	mu      sync.Mutex
	readErr error
}

func newChatSystem(addr string, srcAddrs, rbuf, wbuf int) *chatSystem {
	return &chatSystem{addrs: []string{addr}, place: func(int) int { return 0 }, prefix: runPrefix(), srcAddrs: srcAddrs, rbuf: rbuf, wbuf: wbuf}
}

// splitSystem is a chatSystem whose senders (tr's first tr.senders
// clients) join the server at sendAddr and whose other clients join the
// one at recvAddr: two nodes of a cluster, or the same server twice.
func splitSystem(sendAddr, recvAddr string, tr traffic, srcAddrs, rbuf, wbuf int) *chatSystem {
	s := newChatSystem(sendAddr, srcAddrs, rbuf, wbuf)
	s.addrs = append(s.addrs, recvAddr)
	s.place = func(i int) int {
		if i < tr.senders {
			return 0
		}
		return 1
	}
	return s
}

// runPrefix returns a name prefix unique to this run, so that the users of
// another run on the same server are not counted.
func runPrefix() string {
	return "b" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "_"
}

func (s *chatSystem) Name() string { return "chat" }

func (s *chatSystem) name(i int) string { return s.prefix + strconv.Itoa(i) }

func (s *chatSystem) Connect(ctx context.Context, n int, sk sink) error {
	s.clients = make([]*chatClient, n)
	err := parallel(n, 32, func(i int) error {
		addr := s.addrs[s.place(i)]
		var src net.IP
		if canUseSrc(addr) {
			src = srcIP(i, s.srcAddrs)
		}
		var c *chatClient
		var err error
		if s.dial != nil {
			c, err = s.dial(ctx, s.name(i))
		} else {
			c, err = dialChat(ctx, addr, src, s.name(i), s.rbuf, s.wbuf)
		}
		if err != nil {
			return err
		}
		s.clients[i] = c
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// readLoop always ends with an error; only an unexpected one counts.
			err := c.readLoop(handlers{msg: func(text []byte) { sk(i, text) }})
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				s.mu.Lock()
				if s.readErr == nil {
					s.readErr = fmt.Errorf("%s: %w", c.name, err)
				}
				s.mu.Unlock()
			}
		}()
		return nil
	})
	if err != nil {
		return err
	}
	return waitJoined(ctx, s.clients[0], s.prefix, n, nil)
}

func (s *chatSystem) Sender(i int, rcpts []int) (func([]byte) error, func() error) {
	names := make([]string, len(rcpts))
	for k, r := range rcpts {
		names[k] = s.name(r)
	}
	c := s.clients[i]
	return func(text []byte) error { return c.writeMessage(names, text) }, c.w.Flush
}

// err returns the first unexpected read error.
func (s *chatSystem) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readErr
}

func (s *chatSystem) Close() {
	for _, c := range s.clients {
		if c != nil {
			c.nc.Close()
		}
	}
	s.wg.Wait()
}

// recipients returns the r clients after i, wrapping around n.
func recipients(i, r, n int) []int {
	out := make([]int, r)
	for k := range out {
		out[k] = (i + 1 + k) % n
	}
	return out
}
