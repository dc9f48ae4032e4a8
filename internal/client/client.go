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
	// MaxIncomingFileSize is the largest file the client will receive
	// (default 1 GiB, the server's default limit); a file declared larger
	// is refused and its content skipped. The files being received at
	// once may together declare at most maxIncomingTotal times as much.
	MaxIncomingFileSize int64
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
	// Hooks lets a terminal front end follow file transfers and show
	// the session's lines (each may be nil).
	Hooks Hooks
	// TLS, if not nil, makes the client speak TLS to the server.
	TLS *tls.Config
	// Extensions makes the client ask the server for the extensions it
	// knows before joining (docs/PROTOCOL.md, "Extensions"): files it
	// receives and sends in chunks, so that chat flows during a transfer,
	// and notices of users named who are not online. A server that knows
	// only the contract is then joined again without them.
	Extensions bool
	// Presence, with Extensions, also asks to be told as users join and
	// leave.
	Presence bool
	// Others are more server addresses (host:port), tried after Addr
	// when a lost connection is resumed (reconnect.go).
	Others []string
	// NoResume, with Extensions, does not ask for resume: a lost
	// connection ends the session, as with the contract.
	NoResume bool
	// Heartbeat, with Extensions, asks for the heartbeat extension: the
	// client pings when it has heard nothing from the server for this
	// long, and takes the connection as lost after three times as long
	// (heartbeat.go). 0: not asked.
	Heartbeat time.Duration
}

// Hooks receives events a terminal front end may show. Each may be nil.
type Hooks struct {
	// Progress reports a file transfer: its id (unique in the session:
	// two files of one name may move at once), dir "send" or "recv", the
	// bytes moved so far and the total. It is called at most every
	// 100 ms and once at the end (done true).
	Progress func(id uint64, dir, name string, done, total int64, finished bool)
	// Users reports names seen (from a list, as a message's sender, in
	// the names online at join or a join notice). With it, the client
	// asks the server for the online and presence extensions, whose
	// frames it reports here and to Left without printing them (unless
	// Config.Presence asks for the notices).
	Users func(names []string)
	// Left reports a user who left (a leave notice).
	Left func(name string)
	// Joined reports that the join stands: no refusal came within the
	// join grace, or the server said who is online (the online frame,
	// which it sends only after a join).
	Joined func()
	// Print, if set, shows the lines the session prints in place of
	// writing them to Stdout and Stderr: each comes as an Event that says
	// what it is and holds its parts, and Event.String is the line. The
	// lines of one stream come one at a time, in order; those of stdout
	// and of stderr may come at once.
	Print func(Event)
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

	quitting atomic.Bool   // the session is ending at our request; the close is expected
	ended    chan struct{} // closed when the receiver has stopped
	stood    chan struct{} // closed by the receiver at the online frame, which says the join stood
	severed  atomic.Bool   // a "disconnected:" line was printed
	heard    atomic.Bool   // a frame has arrived from the server

	// wmu serialises writing frames: the session's, and those of the
	// uploads under way. A plain upload holds it for its whole frame.
	wmu    sync.Mutex
	broken atomic.Bool // a write failed or was cut short: nothing more can be sent

	deadlineMu    sync.Mutex
	writeDeadline time.Time // the connection's, as set by setWriteDeadline; guarded by deadlineMu

	upMu      sync.Mutex
	ups       map[uint64]*upload // uploads under way, by id; guarded by upMu
	lastUp    uint64             // the last upload id used; guarded by upMu
	upWG      sync.WaitGroup     // the uploads' goroutines
	transfers atomic.Uint64      // the last id given to a transfer for Hooks.Progress

	// The replies to our own commands (a list, a message or file to
	// ourselves) not yet printed: replied is signalled as each is.
	replyMu sync.Mutex
	expect  int // to the commands being waited for; guarded by replyMu
	late    int // to commands awaitReplies stopped waiting for, which come first; guarded by replyMu
	replied chan struct{}
	// replyWait bounds the wait for the replies to one command (a test
	// may make it longer).
	replyWait time.Duration
	// helloWait bounds the wait for the answer to ext_hello (a test may
	// make it longer).
	helloWait time.Duration

	// limits bounds the payloads read whole (a users list: at most
	// DefaultMaxListUsers names).
	limits protocol.Limits
	disk   diskOps // how received files are put in place

	// Owned by receive.
	buf      []byte               // the payloads of messages and file_* frames
	files    map[uint64]*incoming // chunked files arriving
	madeBufs int                  // the buffers of content made so far (at most saveBudget)
	saving   map[string]*download // by sender, the last download that has all arrived, being saved or saved

	receiving atomic.Int64   // the sizes declared by the downloads under way (started, not yet saved or removed)
	freeBufs  chan []byte    // buffers of content the savers have written
	saves     sync.WaitGroup // the downloads' savers
	heldMu    sync.Mutex     // guards the held lines of downloads (see printMsg)

	// Set before receive starts, then read-only.
	chunked   bool // the server delivers large files in chunks
	uploading bool // files are sent in chunks (file-upload)
	notices   bool // the server sends not_online and presence
	online    bool // the server says who is online at join

	res  resumeState // the resume extension (reconnect.go)
	hb   hbClient    // the heartbeat extension (heartbeat.go)
	sent sendLog     // what was sent and not yet taken, with resume's taken (sendlog.go)
}

// lineWriter writes whole lines to w, one Write per line, so lines from
// different goroutines never interleave; or, with show (Hooks.Print),
// hands show each line as an Event instead.
type lineWriter struct {
	mu      sync.Mutex
	w       io.Writer
	show    func(Event) // if not nil, takes the lines in place of w
	buf     []byte      // the line being written; guarded by mu
	closed  bool        // guarded by mu
	holding bool        // notices are held until release; guarded by mu
	held    []Event     // guarded by mu
}

// maxHeldLines bounds the notices a lineWriter holds: past it (a flood
// from a hostile server within the join grace) they are written at once
// rather than held without end.
const maxHeldLines = 1000

// writeLocked writes e's line, unless the last line has been written. mu
// must be held.
func (l *lineWriter) writeLocked(e Event) {
	if l.closed {
		return
	}
	if l.show != nil {
		l.show(e)
		return
	}
	l.buf = append(e.appendLine(l.buf[:0]), '\n')
	l.w.Write(l.buf)
}

// print prints e's line, unless the last line has been printed.
func (l *lineWriter) print(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked(e)
}

// noticef prints a formatted notice line of kind k, or holds it while the
// writer holds notices (from hold until release).
func (l *lineWriter) noticef(k EventKind, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := Event{Kind: k, Text: fmt.Sprintf(format, args...)}
	if l.holding && len(l.held) < maxHeldLines {
		l.held = append(l.held, e)
		return
	}
	l.writeLocked(e)
}

// hold makes the notices printed from now on wait for release.
func (l *lineWriter) hold() {
	l.mu.Lock()
	l.holding = true
	l.mu.Unlock()
}

// release calls before (if not nil), which must not print on l, then
// prints the notices held, and prints them at once from then on.
func (l *lineWriter) release(before func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if before != nil {
		before()
	}
	for _, e := range l.held {
		l.writeLocked(e)
	}
	l.held, l.holding = nil, false
}

// last prints e's line as the final line: nothing is printed after it.
func (l *lineWriter) last(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked(e)
	l.closed = true
}

// printf prints a formatted diagnostic line (EventDiagnostic).
func (l *lineWriter) printf(format string, args ...any) {
	l.print(Event{Kind: EventDiagnostic, Text: fmt.Sprintf(format, args...)})
}

// setDefaults fills in the settings left zero.
func (cfg *Config) setDefaults() {
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = protocol.DefaultMaxFileSize
	}
	if cfg.MaxIncomingFileSize <= 0 {
		cfg.MaxIncomingFileSize = protocol.DefaultMaxFileSize
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
		cfg:       cfg,
		out:       &lineWriter{w: cfg.Stdout, show: cfg.Hooks.Print},
		log:       &lineWriter{w: cfg.Stderr, show: cfg.Hooks.Print},
		ended:     make(chan struct{}),
		stood:     make(chan struct{}),
		replied:   make(chan struct{}, 1),
		replyWait: replyWait,
		helloWait: helloWait,
		disk:      realDisk,
		files:     make(map[uint64]*incoming),
		freeBufs:  make(chan []byte, saveBudget/saveBufSize),
		saving:    make(map[string]*download),
		ups:       make(map[uint64]*upload),
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
		c.out.last(Event{Kind: EventDisconnected, Text: "username not available"})
		go readInput(cfg.Input, lines, stopInput)
		return c.drain(ctx, lines, nil)
	}
	nc, r, features, err := c.connect(ctx)
	if errors.Is(err, errSpeaksTLS) {
		c.tlsHint()
		c.severed.Store(true)
		c.out.last(Event{Kind: EventDisconnected, Text: "connection to server lost"})
		go readInput(cfg.Input, lines, stopInput)
		return c.drain(ctx, lines, nil)
	}
	if err != nil {
		c.log.printf("client: cannot connect to %s: %v", cfg.Addr, err)
		return ExitDisconnected
	}
	// A server that negotiated try-again answers the join: a join it
	// could not decide (its cluster has no majority) is tried again, on a
	// new connection, until it is decided or the user quits.
	decided := false
	for wait := time.Duration(0); slices.Contains(features, protocol.FeatureTryAgain); {
		if _, err = nc.Write(protocol.AppendJoin(nil, protocol.Join, cfg.User)); err == nil {
			var refused string
			refused, err = c.awaitJoin(ctx, nc, r)
			if err == nil && refused != "" {
				nc.Close()
				c.severed.Store(true)
				c.out.last(Event{Kind: EventDisconnected, Text: refused})
				go readInput(cfg.Input, lines, stopInput)
				return c.drain(ctx, lines, nil)
			}
		}
		var again errTryAgain
		if err == nil || !errors.As(err, &again) {
			decided = err == nil
			break
		}
		nc.Close()
		wait = retryWait(again.after, wait)
		c.log.printf("client: the server cannot admit anybody now (its cluster cannot decide joins); trying again in %v", wait.Round(100*time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			c.out.print(Event{Kind: EventQuitting})
			return ExitOK
		case <-t.C:
		}
		if nc, r, features, err = c.connect(ctx); err != nil {
			c.log.printf("client: cannot connect to %s: %v", cfg.Addr, err)
			return ExitDisconnected
		}
	}
	if err != nil && ctx.Err() != nil {
		nc.Close()
		c.out.print(Event{Kind: EventQuitting})
		return ExitOK
	}
	c.chunked = slices.Contains(features, protocol.FeatureChunkedFile)
	c.uploading = slices.Contains(features, protocol.FeatureFileUpload)
	c.notices = slices.Contains(features, protocol.FeatureNotOnline) || slices.Contains(features, protocol.FeaturePresence)
	c.online = slices.Contains(features, protocol.FeatureOnline)
	c.hb.on = slices.Contains(features, protocol.FeatureHeartbeat)
	c.nc = c.useConn(nc, features)
	c.res.ctx = ctx
	defer c.nc.Close()
	c.w = bufio.NewWriterSize(c.nc, 64<<10)
	// The main loop sees a signal only between commands: a write blocked
	// on a server that reads nothing must not hold the quit up past the
	// quit wait.
	stopSignalWatch := context.AfterFunc(ctx, func() {
		c.quitting.Store(true)
		c.setWriteDeadline(time.Now().Add(cfg.QuitWait), true)
	})
	defer stopSignalWatch()
	if !decided && err == nil {
		c.write(protocol.AppendJoin(nil, protocol.Join, cfg.User))
	}

	// The notices the server sends (users joining...) before the join
	// stands wait for the hint (markJoined). Other lines on stderr do
	// not: they keep their order with stdout's.
	c.log.hold()
	go c.receive(r)
	defer c.upWG.Wait() // the uploads end once the connection has

	go readInput(cfg.Input, lines, stopInput)

	// A successful join is silent, so give a refusal a moment to arrive
	// before acting on input: a script that pipes commands into a refused
	// client then sees only the refusal. The online frame comes only
	// after a join that stood: with it, the wait ends at once, and Tab
	// knows the names online as soon as the prompt shows.
	grace := time.NewTimer(cfg.JoinGrace)
	if decided {
		grace.Reset(0) // the server said so: admitted
	}
	select {
	case <-c.ended:
		grace.Stop()
		c.markJoined(nil)
		return c.drain(ctx, lines, nil)
	case <-ctx.Done():
		grace.Stop()
		c.markJoined(nil)
		return c.quit()
	case <-c.stood:
		grace.Stop()
	case <-grace.C:
	}
	c.markJoined(cfg.Hooks.Joined)

	// While a file goes out in the foreground (always with the plain
	// protocol, whose send_file takes the connection; and with piped
	// input, whose order is kept), the lines that follow wait in pending,
	// but for those that overtake it. A person at a terminal may still
	// cancel or quit at once.
	var fg *upload
	var pending []lineOrEOF
	for {
		in := lines
		if len(pending) >= maxPending {
			in = nil // read no further ahead
		}
		var fgDone, fgBegun <-chan struct{}
		if fg != nil {
			fgDone = fg.done
			if len(pending) > 0 && !begun(fg) {
				fgBegun = fg.begun
			}
		}
		select {
		case <-c.ended:
			return c.drain(ctx, lines, pending)
		case <-ctx.Done():
			return c.quit()
		case l := <-in:
			if fg != nil && !c.actsAtOnce(l) && (len(pending) > 0 || !overtakes(l, fg)) {
				if c.cfg.Interactive && len(pending) == 0 {
					c.log.printf("client: this waits until %s has been sent: the plain protocol sends one thing at a time", fg.name)
				}
				pending = append(pending, l)
				continue
			}
			next, quit := c.step(l)
			if quit {
				return c.quit()
			}
			if fg == nil {
				fg = next
			}
		case <-fgBegun:
			// The server has taken the file's head: what waited and may
			// overtake the file goes now.
			for len(pending) > 0 && overtakes(pending[0], fg) {
				l := pending[0]
				pending = pending[1:]
				if _, quit := c.step(l); quit {
					return c.quit()
				}
			}
		case <-fgDone:
			fg = nil
			c.awaitReplies() // a file to oneself comes back before the next line
			for fg == nil && len(pending) > 0 {
				l := pending[0]
				pending = pending[1:]
				next, quit := c.step(l)
				if quit {
					return c.quit()
				}
				fg = next
			}
		}
	}
}

// markJoined ends the join grace: it calls joined (the Joined hook, which
// shows a terminal's hint; nil when the join did not stand), then prints
// the notices held meanwhile, so that the hint comes first (issue
// 23 item 8: with --join-notices, "carol joined" could precede it).
func (c *client) markJoined(joined func()) {
	c.log.release(joined)
}

// maxPending is the most lines of input read ahead while a file is sent
// in the foreground.
const maxPending = 1000

// step acts on one line of input (or its end). It returns the upload the
// next lines must wait for, if the line started one in the foreground,
// and whether the session is to quit.
func (c *client) step(l lineOrEOF) (fg *upload, quit bool) {
	if l.err != nil {
		return nil, true
	}
	fg, quit = c.handle(l.line)
	if !quit && fg == nil {
		c.awaitReplies()
	}
	return fg, quit
}

// actsAtOnce reports whether line l is acted on while a file is sent in
// the foreground: on a terminal, the end of input (Ctrl-C, Ctrl-D), quit
// and cancel are; piped input keeps its order.
func (c *client) actsAtOnce(l lineOrEOF) bool {
	if !c.cfg.Interactive {
		return false
	}
	if l.err != nil || isCancel(l.line) {
		return true
	}
	cmd, err := ParseCommand(l.line)
	return err == nil && cmd.Kind == Quit
}

// overtakes reports whether line l, read while fg is sent in the
// foreground and with nothing read before it still waiting, is acted on
// without waiting for the file's outcome, with either kind of input: a
// message to none of the file's recipients, a list or a help, once the
// server has taken the file's head. Nothing the file's recipients get can
// then come before the file, and the server's lines (file: before msg:)
// and the client's own keep the input's order. Held back, a piped `msg 1
// carol ...` waited for the file's outcome, which a recipient that reads
// nothing delays until it is cut off (issue 19 part 4: 29 s). With the
// plain protocol the file's one frame takes the connection, so nothing
// overtakes it.
func overtakes(l lineOrEOF, fg *upload) bool {
	if l.err != nil || fg.plain || !begun(fg) {
		return false
	}
	cmd, err := ParseCommand(l.line)
	if err != nil {
		return false
	}
	switch cmd.Kind {
	case List, Help:
		return true
	case Msg:
		return !slices.ContainsFunc(cmd.Names, func(n string) bool { return slices.Contains(fg.names, n) })
	}
	return false
}

// begun reports whether the server has taken fg's head.
func begun(fg *upload) bool {
	select {
	case <-fg.begun:
		return true
	default:
		return false
	}
}

// drain ends a session that is over: on a terminal at once, otherwise
// after reading the rest of the input up to quit, so that a program
// feeding the client never meets a closed pipe. Lines read ahead
// (pending) count as input. Cancelling ctx (a signal) ends it at once too.
func (c *client) drain(ctx context.Context, lines <-chan lineOrEOF, pending []lineOrEOF) int {
	if c.nc != nil {
		c.nc.Close()
	}
	if c.cfg.Interactive {
		return ExitDisconnected
	}
	isQuit := func(l lineOrEOF) bool {
		if l.err != nil {
			return true
		}
		cmd, err := ParseCommand(l.line)
		return err == nil && cmd.Kind == Quit
	}
	if slices.ContainsFunc(pending, isQuit) {
		return ExitDisconnected
	}
	for {
		select {
		case l := <-lines:
			if isQuit(l) {
				return ExitDisconnected
			}
		case <-ctx.Done():
			return ExitDisconnected
		}
	}
}

// quit ends the session at the user's request: it stops the uploads under
// way, sends disconnect, prints what still arrives until the server closes
// the connection (for at most QuitWait), and prints quitting.
func (c *client) quit() int {
	c.quitting.Store(true)
	c.stopUploads()
	if c.broken.Load() {
		// Cut mid-frame: the server can make nothing more of this
		// connection, and may not even notice before a slow recipient
		// of the file lets it go.
		c.nc.Close()
	} else {
		c.setWriteDeadline(time.Now().Add(c.cfg.QuitWait), false) // a server that reads nothing holds no quit up
		c.write(protocol.AppendJoin(nil, protocol.Disconnect, c.cfg.User))
		if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
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
	c.out.print(Event{Kind: EventQuitting})
	return ExitOK
}

// setWriteDeadline sets the connection's write deadline to t, or, if
// earlierOnly, to t only if no earlier one is set: a signal's bound must
// not put off the cut of a send_file that quit has just made.
func (c *client) setWriteDeadline(t time.Time, earlierOnly bool) {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if earlierOnly && !c.writeDeadline.IsZero() && c.writeDeadline.Before(t) {
		return
	}
	c.writeDeadline = t
	c.nc.SetWriteDeadline(t)
}

// sever prints "disconnected: " and why, and ends the session.
func (c *client) sever(why string) {
	c.severed.Store(true)
	c.out.last(Event{Kind: EventDisconnected, Text: why})
	c.nc.Close()
}

// lost ends the session after the stream ended or could not be decoded.
// Why it ended (EOF, a reset, a malformed frame) is not said: it tells a
// person nothing the contract's disconnected line does not (issue 23
// item 5: every client printed "client: connection ended: EOF" as a
// server stopped).
func (c *client) lost() {
	if c.quitting.Load() {
		return
	}
	if !c.heard.Load() && c.cfg.TLS == nil && c.speaksTLS(context.Background()) {
		// Nothing ever came: the server waited for a TLS handshake and
		// took the join for a broken one.
		c.tlsHint()
	}
	c.sever("connection to server lost")
}

// replyWait bounds the wait for the replies to one command.
const replyWait = 300 * time.Millisecond

// expectReply notes that the command being sent will be answered.
func (c *client) expectReply() {
	c.replyMu.Lock()
	c.expect++
	c.replyMu.Unlock()
}

// gotReply notes that an expected answer was printed (or refused). The
// server answers in order, so a late answer to an earlier command comes
// before those the client now waits for.
func (c *client) gotReply() {
	c.replyMu.Lock()
	if c.late > 0 {
		c.late--
	} else if c.expect > 0 {
		c.expect--
	}
	c.replyMu.Unlock()
	select {
	case c.replied <- struct{}{}:
	default:
	}
}

// awaitReplies waits until the answers to the last command have been
// printed, so that what the client prints follows the order of its input
// (`list` then a bad command prints the list first), for at most replyWait.
func (c *client) awaitReplies() {
	if c.expected() == 0 {
		return
	}
	timer := time.NewTimer(c.replyWait)
	defer timer.Stop()
	for c.expected() > 0 {
		select {
		case <-c.replied:
		case <-c.ended:
			return
		case <-timer.C:
			// Given up on, they still come, and must not count as
			// the answers to the next command.
			c.replyMu.Lock()
			c.late += c.expect
			c.expect = 0
			c.replyMu.Unlock()
			return
		}
	}
}

// expected returns how many answers the client waits for.
func (c *client) expected() int {
	c.replyMu.Lock()
	defer c.replyMu.Unlock()
	return c.expect
}
