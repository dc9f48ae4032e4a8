// Package client implements the terminal chat client of PROTOCOL.md: it
// joins, turns lines of user input into frames, and prints or saves what
// the server sends.
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// maxLine is the longest input line kept; no valid command is longer.
	maxLine = 1 << 20
)

// Exit codes.
const (
	ExitOK           = 0
	ExitDisconnected = 1
)

// Client is one chat session. Create it with Run.
type client struct {
	cfg Config
	nc  net.Conn
	w   *bufio.Writer // owned by the Run goroutine
	out *lineWriter
	log *lineWriter

	quitting atomic.Bool   // a disconnect was sent; the close is expected
	ended    chan struct{} // closed when the receiver has stopped
	severed  atomic.Bool   // a "disconnected:" line was printed
	// expect counts replies to our own commands (a list, a message or
	// file to ourselves) not yet printed; replied is signalled as each is.
	expect  atomic.Int32
	replied chan struct{}

	chunked bool                 // the server delivers large files in chunks; set before receive starts
	files   map[uint64]*incoming // chunked files arriving; owned by receive
}

// lineWriter writes whole lines to w, one Write per line, so lines from
// different goroutines never interleave.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool // guarded by mu
}

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

func (l *lineWriter) printf(format string, args ...any) {
	l.println(fmt.Sprintf(format, args...))
}

// Run connects, joins as cfg.User and runs the session until the user
// quits, the input ends or the connection is lost. It returns the exit
// code. Cancelling ctx quits as the quit command does.
func Run(ctx context.Context, cfg Config) int {
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
	c := &client{
		cfg:   cfg,
		out:   &lineWriter{w: cfg.Stdout},
		log:   &lineWriter{w: cfg.Stderr},
		ended: make(chan struct{}),
		files: make(map[uint64]*incoming),

		replied: make(chan struct{}, 1),
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

	input := cfg.Input
	if input == nil {
		input = newLineReader(cfg.Stdin)
	}
	lines := make(chan lineOrEOF)
	stopInput := make(chan struct{})
	defer close(stopInput)
	go readInput(input, lines, stopInput)

	// A successful join is silent, so give a refusal a moment to arrive
	// before acting on input: a script that pipes commands into a refused
	// client then sees only the refusal.
	grace := time.NewTimer(cfg.JoinGrace)
	select {
	case <-c.ended:
		grace.Stop()
		return c.drain(lines)
	case <-ctx.Done():
		grace.Stop()
		return c.quit()
	case <-grace.C:
	}

	for {
		select {
		case <-c.ended:
			return c.drain(lines)
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

type lineOrEOF struct {
	line string
	err  error
}

// readInput sends the lines of input to lines until input ends or stop is
// closed. It is owned by Run; it ends when Run returns or input ends.
func readInput(input LineSource, lines chan<- lineOrEOF, stop <-chan struct{}) {
	for {
		line, err := input.ReadLine()
		if err != nil && line == "" {
			select {
			case lines <- lineOrEOF{err: err}:
			case <-stop:
			}
			return
		}
		select {
		case lines <- lineOrEOF{line: line}:
		case <-stop:
			return
		}
	}
}

// lineReader reads lines of any length from r, keeping at most maxLine
// bytes of one; a longer line is returned as a single invalid byte so that
// it parses as incorrect input.
type lineReader struct {
	br *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// ReadLine implements LineSource.
func (lr *lineReader) ReadLine() (string, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > maxLine {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			return "\x00", nil
		}
		if err != nil && len(line) > 0 {
			return string(line), nil
		}
		return string(line), err
	}
}

// drain ends a session the server ended: on a terminal at once, otherwise
// after reading the rest of the input up to quit, so that a program
// feeding the client never meets a closed pipe.
func (c *client) drain(lines <-chan lineOrEOF) int {
	c.nc.Close()
	if c.cfg.Interactive {
		return ExitDisconnected
	}
	for l := range lines {
		if l.err != nil {
			break
		}
		if cmd, err := ParseCommand(l.line); err == nil && cmd.Kind == Quit {
			break
		}
	}
	return ExitDisconnected
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

func (c *client) flush() {
	if err := c.w.Flush(); err != nil && !c.quitting.Load() {
		c.log.printf("client: sending failed: %v", err)
	}
}

// handle acts on one line of input. It returns true for quit.
func (c *client) handle(line string) bool {
	cmd, err := ParseCommand(line)
	if err != nil {
		c.out.println("incorrect user input format")
		return false
	}
	switch cmd.Kind {
	case Msg:
		if slices.Contains(cmd.Names, c.cfg.User) {
			c.expectReply()
		}
		c.w.Write(protocol.AppendMessage(nil, protocol.SendMessage, cmd.Names, []byte(cmd.Text)))
		c.flush()
	case List:
		c.expectReply()
		c.w.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
		c.flush()
	case File:
		c.sendFile(cmd.Names, cmd.Path)
	case Help:
		c.out.println(HelpText)
	case Quit:
		return true
	}
	return false
}

// HelpText is what the help command prints.
const HelpText = `Commands:
  msg <N> <user1> ... <userN> <message>   send a message to N users
      e.g. msg 2 alice bob Hello, both of you!
  list                                    list the users online, sorted
      e.g. list
  file <N> <user1> ... <userN> <path>     send a file to N users
      e.g. file 1 bob ./notes/report.pdf
  help                                    print this help
      e.g. help
  quit                                    leave the chat (end of input does too)
      e.g. quit`

// sendFile streams the file at path to the named users.
func (c *client) sendFile(names []string, path string) {
	f, err := os.Open(path)
	if err != nil {
		c.log.printf("file: cannot read %s: %v", path, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.log.printf("file: cannot read %s: %v", path, err)
		return
	}
	if !st.Mode().IsRegular() {
		c.log.printf("file: cannot send %s: not a regular file", path)
		return
	}
	if st.Size() > c.cfg.MaxFileSize {
		c.log.printf("file: cannot send %s: %d bytes is more than the limit of %d", path, st.Size(), c.cfg.MaxFileSize)
		return
	}
	base := filepath.Base(path)
	if err := protocol.ValidFilename(base); err != nil {
		c.log.printf("file: cannot send %s: %v", path, err)
		return
	}
	size := st.Size()
	if slices.Contains(names, c.cfg.User) {
		c.expectReply()
	}
	c.w.Write(protocol.AppendFileHead(nil, protocol.SendFile, names, base, size))
	p := c.progress("send", base, size)
	n, err := io.Copy(c.w, io.TeeReader(io.LimitReader(f, size), p))
	if err == nil && n < size {
		err = fmt.Errorf("file shrank to %d bytes while being sent", n)
	}
	if err != nil {
		// The frame's length is already on its way: fill it so the
		// stream stays in step, and tell the user.
		c.log.printf("file: %s: %v; the recipients get a damaged copy", path, err)
		io.CopyN(c.w, zeroReader{}, size-n)
	}
	p.finish()
	c.flush()
}

type zeroReader struct{}

// Read fills p with zero bytes.
func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// progress returns a writer counting bytes of a transfer for the hooks.
func (c *client) progress(dir, name string, total int64) *progressCounter {
	return &progressCounter{fn: c.cfg.Hooks.Progress, dir: dir, name: name, total: total}
}

type progressCounter struct {
	fn          func(dir, name string, done, total int64, finished bool)
	dir, name   string
	done, total int64
	last        time.Time
}

// Write counts b and reports progress at most every 100 ms.
func (p *progressCounter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.fn != nil && time.Since(p.last) >= 100*time.Millisecond {
		p.last = time.Now()
		p.fn(p.dir, p.name, p.done, p.total, false)
	}
	return len(b), nil
}

func (p *progressCounter) finish() {
	if p.fn != nil {
		p.fn(p.dir, p.name, p.done, p.total, true)
	}
}

// receive reads frames until the connection ends. It is owned by Run and
// closes c.ended when it stops.
func (c *client) receive(r *protocol.Reader) {
	defer close(c.ended)
	defer c.dropFiles()
	for {
		h, err := r.ReadHeader()
		if err != nil {
			c.lost(err)
			return
		}
		switch h.Type {
		case protocol.ResponseUsersList:
			p, ok := c.payload(r, h, 64<<20)
			if !ok {
				continue
			}
			names, err := protocol.ParseUsersList(p)
			if err != nil {
				c.log.printf("client: ignoring malformed %s: %v", h.Name, err)
				continue
			}
			c.seen(names)
			slices.Sort(names) // the server sorts too; print sorted whatever it sent
			c.out.println("list: " + strings.Join(names, " "))
			c.gotReply()
		case protocol.ForwardMessage:
			p, ok := c.payload(r, h, 2+protocol.MaxUsernameBytes+1+protocol.MaxTextBytes)
			if !ok {
				continue
			}
			sender, text, err := protocol.ParseForward(p)
			if err != nil {
				c.log.printf("client: ignoring malformed %s: %v", h.Name, err)
				continue
			}
			c.seen([]string{sender})
			c.out.println("msg: " + sender + ": " + string(text))
			if sender == c.cfg.User {
				c.gotReply()
			}
		case protocol.ForwardFile:
			if err := c.receiveFile(r); err != nil {
				c.lost(err)
				return
			}
		case protocol.FileBegin, protocol.FileChunk, protocol.FileEnd, protocol.FileAbort:
			if !c.chunked {
				c.log.printf("client: ignoring %s: %v", h.Name, errNotChunked)
				continue
			}
			if p, ok := c.payload(r, h, 64+protocol.MaxChunkData+2*protocol.MaxUsernameBytes+protocol.MaxFilenameBytes); ok {
				c.fileFrame(h.Type, p)
			}
		case protocol.ErrUnknownMessage:
			c.sever("disconnected: server received an unknown command")
			return
		case protocol.ErrServerFull:
			c.sever("disconnected: server full")
			return
		case protocol.ErrUsernameUnavailable:
			c.sever("disconnected: username not available")
			return
		default:
			c.log.printf("client: ignoring frame of type %q (%d bytes)", h.Name, h.Length)
		}
	}
}

// payload reads a frame's payload of at most max bytes; a longer one is
// skipped with a note.
func (c *client) payload(r *protocol.Reader, h protocol.Header, max int64) ([]byte, bool) {
	if h.Length > max {
		c.log.printf("client: ignoring %s of %d bytes", h.Name, h.Length)
		return nil, false
	}
	p, err := r.ReadPayload(nil)
	if err != nil {
		return nil, false // the next ReadHeader reports the error
	}
	return p, true
}

func (c *client) seen(names []string) {
	if c.cfg.Hooks.Users != nil {
		c.cfg.Hooks.Users(names)
	}
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

// receiveFile saves a forward_file's content. It returns an error only
// when the stream itself failed; a file that is refused or cannot be saved
// is reported on stderr and skipped.
func (c *client) receiveFile(r *protocol.Reader) error {
	names, filename, err := protocol.ReadFileHead(r, 1, 1)
	if err != nil {
		if isStreamError(err) {
			return err
		}
		c.log.printf("client: refusing file: %v", err)
		return nil // the rest of the payload is skipped by ReadHeader
	}
	sender, size := names[0], r.Remaining()
	if sender == c.cfg.User {
		defer c.gotReply()
	}
	d := c.startDownload(sender, filename, size)
	if d == nil {
		return nil // refused; the rest of the payload is skipped by ReadHeader
	}
	if _, err := io.Copy(d, r); err != nil {
		d.discard()
		return err // the stream failed
	}
	c.finishDownload(d, nil)
	return nil
}

// download is a received file being written to a temporary file in the
// download folder, renamed into place only once complete.
type download struct {
	sender, filename string
	tmp              *os.File
	fw               *failWriter
	p                *progressCounter
}

// startDownload opens a temporary file for filename from sender, or
// reports on stderr why the file cannot be taken and returns nil.
func (c *client) startDownload(sender, filename string, size int64) *download {
	if len(c.cfg.User)+1+len(filename) > 255 {
		c.log.printf("client: refusing file %q from %s: saved name longer than 255 bytes", filename, sender)
		return nil
	}
	tmp, err := os.CreateTemp(c.cfg.DownloadDir, ".chat-recv-*.part")
	if err != nil {
		c.log.printf("client: cannot save %q from %s: %v", filename, sender, err)
		return nil
	}
	return &download{sender: sender, filename: filename, tmp: tmp, fw: &failWriter{w: tmp}, p: c.progress("recv", filename, size)}
}

// Write writes content to the temporary file (remembering, not returning,
// a failure, so the stream can still be read past) and counts progress.
func (d *download) Write(b []byte) (int, error) {
	d.fw.Write(b)
	return d.p.Write(b)
}

// discard ends an incomplete download, leaving nothing behind.
func (d *download) discard() {
	d.p.finish()
	d.tmp.Close()
	os.Remove(d.tmp.Name())
}

// finishDownload renames a complete download to <own username>_<filename>
// and prints its line; failed (not nil) or a write failure makes it
// removed instead, with a message on stderr.
func (c *client) finishDownload(d *download, failed error) {
	d.p.finish()
	err := d.fw.err
	if err == nil {
		err = failed
	}
	if err == nil {
		err = d.tmp.Chmod(0o644)
	}
	if cerr := d.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(d.tmp.Name(), filepath.Join(c.cfg.DownloadDir, c.cfg.User+"_"+d.filename))
	}
	if err != nil {
		os.Remove(d.tmp.Name())
		c.log.printf("client: cannot save %q from %s: %v", d.filename, d.sender, err)
		return
	}
	c.out.println("file: " + d.sender + ": " + d.filename)
}

// failWriter writes to w until a write fails, then discards, remembering
// the error, so the rest of a payload can still be read past.
type failWriter struct {
	w   io.Writer
	err error
}

// Write writes b unless an earlier write failed; it always reports success.
func (f *failWriter) Write(b []byte) (int, error) {
	if f.err == nil {
		_, f.err = f.w.Write(b)
	}
	return len(b), nil
}

func isStreamError(err error) bool { return !errors.Is(err, protocol.ErrMalformed) }

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
