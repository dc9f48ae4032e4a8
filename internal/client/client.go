// Package client implements the terminal chat client of PROTOCOL.md: it
// joins, turns lines of user input into frames, and prints or saves what
// the server sends.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Config holds the client's settings.
type Config struct {
	// User is the username to join as.
	User string
	// Addr is the server's host:port.
	Addr string
	// MaxFileSize is the largest file the client will send (default 1 GiB).
	MaxFileSize int64
	// DownloadDir is where received files are saved (default: the working
	// directory).
	DownloadDir string
	// ConnectTimeout bounds connecting (default 10 s).
	ConnectTimeout time.Duration
	// QuitWait bounds the wait for the server to close after quit
	// (default 1 s).
	QuitWait time.Duration
	// JoinGrace is how long input waits after the join for a refusal
	// (default 200 ms).
	JoinGrace time.Duration
	// Interactive is true when stdin is a terminal: after a disconnection
	// the client then exits at once instead of draining its input.
	Interactive bool
	// Input supplies the user's lines. Nil means Stdin read line by line.
	Input LineSource
	// Stdin, Stdout and Stderr are the standard streams.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Hooks lets a terminal front end follow file transfers (may be nil).
	Hooks Hooks
	// TLS, if not nil, makes the client speak TLS to the server.
	TLS *tls.Config
	// Extensions makes the client ask the server for the extensions it
	// knows (chunked file delivery) before joining.
	Extensions bool
}

// Hooks receives events a terminal front end may show. Each may be nil.
type Hooks struct {
	// Progress reports a file transfer: dir "send" or "recv", the bytes
	// moved so far and the total. It is called at most every 100 ms and
	// once at the end (done true).
	Progress func(dir, name string, done, total int64, finished bool)
	// Users reports names seen (from a list, or as a message's sender).
	Users func(names []string)
}

// LineSource yields lines of user input. ReadLine returns io.EOF at the
// end of input.
type LineSource interface {
	ReadLine() (string, error)
}

// Defaults.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultQuitWait       = time.Second
	DefaultJoinGrace      = 200 * time.Millisecond
)

// Exit codes.
const (
	ExitOK           = 0
	ExitDisconnected = 1
)

// client is one chat session, made by newClient and run by run.
type client struct {
	cfg Config
	nc  net.Conn
	w   *bufio.Writer // owned by run
	out *lineWriter
	log *lineWriter

	quitting atomic.Bool   // a disconnect was sent; the close is expected
	ended    chan struct{} // closed when the receiver has stopped
	severed  atomic.Bool   // a "disconnected:" line was printed
	// expect counts replies to our own commands (a list, a message or
	// file to ourselves) not yet printed; replied is signalled as each is.
	expect  atomic.Int32
	replied chan struct{}

	// limits bounds the payloads read whole (a users list: at most
	// DefaultMaxListUsers names).
	limits protocol.Limits
	disk   diskOps // how received files are put in place

	// Owned by receive.
	buf   []byte               // the payloads of messages and file_* frames
	files map[uint64]*incoming // chunked files arriving

	chunked bool // the server delivers large files in chunks; set before receive starts
}

// lineWriter writes whole lines to w, one Write per line, so lines from
// different goroutines never interleave.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool // guarded by mu
}

// println prints s as a line, unless the last line has been printed.
func (l *lineWriter) println(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.w.Write(append([]byte(s), '\n'))
	}
}

// last prints s as the final line: nothing is printed after it.
func (l *lineWriter) last(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.w.Write(append([]byte(s), '\n'))
		l.closed = true
	}
}

// printf prints a formatted line.
func (l *lineWriter) printf(format string, args ...any) {
	l.println(fmt.Sprintf(format, args...))
}

// setDefaults fills in the settings left zero.
func (cfg *Config) setDefaults() {
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = protocol.DefaultMaxFileSize
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.QuitWait <= 0 {
		cfg.QuitWait = DefaultQuitWait
	}
	if cfg.JoinGrace <= 0 {
		cfg.JoinGrace = DefaultJoinGrace
	}
	if cfg.DownloadDir == "" {
		cfg.DownloadDir = "."
	}
	if cfg.Input == nil {
		cfg.Input = newLineReader(cfg.Stdin)
	}
}

// Run connects, joins as cfg.User and runs the session until the user
// quits, the input ends or the connection is lost. It returns the exit
// code. Cancelling ctx quits as the quit command does.
func Run(ctx context.Context, cfg Config) int {
	return newClient(cfg).run(ctx)
}

// newClient returns the session for cfg, not yet connected.
func newClient(cfg Config) *client {
	cfg.setDefaults()
	c := &client{
		cfg:     cfg,
		out:     &lineWriter{w: cfg.Stdout},
		log:     &lineWriter{w: cfg.Stderr},
		ended:   make(chan struct{}),
		replied: make(chan struct{}, 1),
		disk:    realDisk,
		files:   make(map[uint64]*incoming),
	}
	c.buf = make([]byte, 0, max(c.limits.MaxPayload(protocol.ToClient, protocol.ForwardMessage),
		c.limits.MaxPayload(protocol.ToClient, protocol.FileChunk)))
	return c
}

// run is Run for a session made by newClient.
func (c *client) run(ctx context.Context) int {
	cfg := c.cfg
	lines := make(chan lineOrEOF)
	stopInput := make(chan struct{})
	defer close(stopInput)
	// A name the protocol forbids is refused here, as a server would
	// refuse it: it never reaches the server, nor the saved files' names.
	if err := protocol.ValidUsername(cfg.User); err != nil {
		c.log.printf("client: invalid username %q: %s", cfg.User, usernameProblem(cfg.User))
		c.severed.Store(true)
		c.out.last("disconnected: username not available")
		go readInput(cfg.Input, lines, stopInput)
		return c.drain(ctx, lines)
	}
	nc, r, features, err := c.connect(ctx)
	if err != nil {
		c.log.printf("client: cannot connect to %s: %v", cfg.Addr, err)
		return ExitDisconnected
	}
	c.chunked = slices.Contains(features, protocol.FeatureChunkedFile)
	c.nc = nc
	defer nc.Close()
	c.w = bufio.NewWriterSize(nc, 64<<10)
	c.w.Write(protocol.AppendJoin(nil, protocol.Join, cfg.User))
	c.flush()

	go c.receive(r)

	go readInput(cfg.Input, lines, stopInput)

	// A successful join is silent, so give a refusal a moment to arrive
	// before acting on input: a script that pipes commands into a refused
	// client then sees only the refusal.
	grace := time.NewTimer(cfg.JoinGrace)
	select {
	case <-c.ended:
		grace.Stop()
		return c.drain(ctx, lines)
	case <-ctx.Done():
		grace.Stop()
		return c.quit()
	case <-grace.C:
	}

	for {
		select {
		case <-c.ended:
			return c.drain(ctx, lines)
		case <-ctx.Done():
			return c.quit()
		case l := <-lines:
			if l.err != nil {
				return c.quit()
			}
			if c.handle(l.line) {
				return c.quit()
			}
			c.awaitReplies()
		}
	}
}

// drain ends a session that is over: on a terminal at once, otherwise
// after reading the rest of the input up to quit, so that a program
// feeding the client never meets a closed pipe. Cancelling ctx (a signal)
// ends it at once too.
func (c *client) drain(ctx context.Context, lines <-chan lineOrEOF) int {
	if c.nc != nil {
		c.nc.Close()
	}
	if c.cfg.Interactive {
		return ExitDisconnected
	}
	for {
		select {
		case l := <-lines:
			if l.err != nil {
				return ExitDisconnected
			}
			if cmd, err := ParseCommand(l.line); err == nil && cmd.Kind == Quit {
				return ExitDisconnected
			}
		case <-ctx.Done():
			return ExitDisconnected
		}
	}
}

// quit sends disconnect, prints what still arrives until the server closes
// the connection (for at most QuitWait), and prints quitting.
func (c *client) quit() int {
	c.quitting.Store(true)
	c.w.Write(protocol.AppendJoin(nil, protocol.Disconnect, c.cfg.User))
	c.flush()
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	timer := time.NewTimer(c.cfg.QuitWait)
	defer timer.Stop()
	select {
	case <-c.ended:
	case <-timer.C:
		c.nc.Close()
		<-c.ended
	}
	if c.severed.Load() {
		return ExitDisconnected
	}
	c.out.println("quitting")
	return ExitOK
}

// sever prints a disconnected line and ends the session.
func (c *client) sever(line string) {
	c.severed.Store(true)
	c.out.last(line)
	c.nc.Close()
}

// lost ends the session after the stream ended or could not be decoded.
func (c *client) lost(err error) {
	if c.quitting.Load() {
		return
	}
	c.log.printf("client: connection ended: %v", err)
	c.sever("disconnected: connection to server lost")
}

// replyWait bounds the wait for the replies to one command.
const replyWait = 300 * time.Millisecond

// expectReply notes that the command being sent will be answered.
func (c *client) expectReply() { c.expect.Add(1) }

// gotReply notes that an expected answer was printed (or refused).
func (c *client) gotReply() {
	for {
		n := c.expect.Load()
		if n <= 0 || c.expect.CompareAndSwap(n, n-1) {
			break
		}
	}
	select {
	case c.replied <- struct{}{}:
	default:
	}
}

// awaitReplies waits until the answers to the last command have been
// printed, so that what the client prints follows the order of its input
// (`list` then a bad command prints the list first), for at most replyWait.
func (c *client) awaitReplies() {
	if c.expect.Load() <= 0 {
		return
	}
	timer := time.NewTimer(replyWait)
	defer timer.Stop()
	for c.expect.Load() > 0 {
		select {
		case <-c.replied:
		case <-c.ended:
			return
		case <-timer.C:
			c.expect.Store(0)
			return
		}
	}
}
