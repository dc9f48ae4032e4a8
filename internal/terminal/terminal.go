// Package terminal is the chat client's front end for a person at a
// terminal. It edits the input line (its own editor on the terminal's raw
// mode: cursor movement and deletion by character as a person sees it,
// wide East Asian characters, emoji and combining marks included; words;
// history with Ctrl-R search; Tab completion), prints what arrives above
// the input line without disturbing what is being typed, shows progress
// bars for file transfers, and colors the output.
//
// It is used only when stdin, stdout and stderr are all terminals (see
// Usable); the session itself stays in package client, which gets the
// front end through client.Config (Input, Stdout, Stderr, Hooks) and hands
// it each line it prints as a client.Event, which says what the line is:
// nothing here recognises the client's output by its text. The lines of
// PROTOCOL.md keep their exact text: they go to stdout, at most wrapped in
// color escapes. The prompt, the echo of what is typed, the bars and
// diagnostics go to stderr.
package terminal

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/gochat/chat/internal/client"
)

// hint is shown once the join stands.
const hint = "Type help for the commands. Tab completes; Ctrl-D quits."

// keysHelp follows the help text on a terminal.
const keysHelp = `Keys:
  Tab              complete a command, a username or a file path
  Up, Down         recall earlier lines; Ctrl-R searches them (Esc keeps
                   the line found, Ctrl-G gives up)
  Left, Right      move by a character; Alt-B, Alt-F by a word
  Ctrl-A, Ctrl-E   go to the start, to the end of the line
  Ctrl-W, Ctrl-U   delete the word before the cursor, all before it
  Ctrl-K           delete from the cursor to the end
  Ctrl-L           clear the screen
  Ctrl-C, Ctrl-D   quit (Ctrl-D on an empty line); files being sent are
                   cancelled first (type cancel to cancel them and stay)`

// Terminal is the front end of one session. Create it with Open; give it
// to the session with Configure; Close it when the session is over.
type Terminal struct {
	pal    palette
	prompt promptText
	scr    *screen
	keys   *keyReader
	comp   *completer
	hist   *history

	// Used by the goroutine calling ReadLine, with scr.mu held.
	ed     *editor
	search search
	warned bool // the line reached its limit: said once

	fd    int         // stdin's descriptor, when Open made it raw
	state *term.State // stdin's mode before, nil if untouched
	winch chan os.Signal
	ready chan struct{} // closed by joined: the prompt may show
	join  sync.Once
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
	once  sync.Once
}

// Usable reports whether the front end should be used: stdin, stdout and
// stderr are all terminals and TERM is not "dumb".
func Usable(stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) bool {
	if getenv("TERM") == "dumb" {
		return false
	}
	for _, w := range []any{stdin, stdout, stderr} {
		f, ok := w.(*os.File)
		if !ok || f == nil || !term.IsTerminal(int(f.Fd())) {
			return false
		}
	}
	return true
}

// ColorWanted reports whether colors are wanted: NO_COLOR is unset or
// empty (https://no-color.org) and TERM is not "dumb".
func ColorWanted(getenv func(string) string) bool {
	return getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// Attach sets cfg up to use the front end when Usable says so, and
// returns the function that ends it (a no-op otherwise), to be called when
// client.Run returns. If the terminal cannot be set up, the session runs
// as when piped. The lines typed are kept in historyFile across sessions
// (see HistoryFile), unless it is empty.
func Attach(cfg *client.Config, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string, historyFile string) (end func()) {
	if !Usable(stdin, stdout, stderr, getenv) {
		return func() {}
	}
	t, err := Open(cfg.User, stdin, stdout.(*os.File), stderr.(*os.File), ColorWanted(getenv))
	if err != nil {
		return func() {}
	}
	if historyFile != "" {
		t.hist = loadHistory(historyFile)
	}
	t.Configure(cfg)
	return func() { t.Close() }
}

// Open starts the front end for user on the terminal of stdin, stdout and
// stderr (check Usable first): it puts stdin in raw mode and starts
// reading it.
func Open(user string, stdin, stdout, stderr *os.File, color bool) (*Terminal, error) {
	fd := int(stdin.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	errFd := int(stderr.Fd())
	size := func() (int, int) {
		w, h, err := term.GetSize(errFd)
		if err != nil || w <= 0 {
			return 80, 24
		}
		return w, h
	}
	keys := make(chan []byte)
	t := newTerminal(user, keys, stderr, stdout, palette{on: color}, size)
	t.fd, t.state = fd, state
	go pump(stdin, keys, t.done)
	t.winch = make(chan os.Signal, 1)
	signal.Notify(t.winch, syscall.SIGWINCH)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			select {
			case <-t.winch:
				t.scr.resize()
			case <-t.done:
				return
			}
		}
	}()
	return t, nil
}

// newTerminal builds the front end on keys read from src, drawing on tty
// (stderr) and printing the protocol's lines on out (stdout). size returns
// the terminal's width and height.
func newTerminal(user string, src <-chan []byte, tty, out io.Writer, pal palette, size func() (int, int)) *Terminal {
	t := &Terminal{
		pal:    pal,
		prompt: newPrompt(pal.prompt(user), user+"> "),
		comp:   newCompleter(user),
		hist:   &history{},
		ed:     newEditor(client.MaxLine),
		fd:     -1,
		ready:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	t.keys = &keyReader{src: src, done: t.done, wait: escWait}
	t.scr = newScreen(tty, out, pal, func() int { w, _ := size(); return w }, t.ed)
	return t
}

// joined shows the hint and lets the prompt show, once the join stands
// (client.Hooks.Joined): a client refused at once has nothing to type.
func (t *Terminal) joined() {
	t.join.Do(func() {
		t.scr.print(t.scr.tty, []byte(hint), func(l string) string { return t.pal.paint(l, sgrDim) })
		close(t.ready)
	})
}

// Configure makes cfg's session use the front end.
func (t *Terminal) Configure(cfg *client.Config) {
	cfg.Input = t
	cfg.Stdout = t.Stdout()
	cfg.Stderr = t.Stderr()
	cfg.Interactive = true
	cfg.Hooks = t.Hooks()
}

// ReadLine implements client.LineSource: once the join stands, it shows
// the prompt and returns the line typed. Ctrl-C, and Ctrl-D on an empty
// line, end the input (io.EOF), which quits the session.
func (t *Terminal) ReadLine() (string, error) {
	select {
	case <-t.ready:
	case <-t.done:
		return "", io.EOF
	}
	s := t.scr
	s.mu.Lock()
	s.beginInput(t.prompt)
	s.mu.Unlock()
	for {
		k, err := t.keys.next()
		s.mu.Lock()
		if err != nil {
			t.endSearch()
			s.endInput()
			s.mu.Unlock()
			return "", io.EOF
		}
		line, end := t.handle(k)
		switch {
		case end == lineEntered:
			s.submit(t.prompt, line)
		case end == inputEnded:
			s.endInput()
		case !t.keys.more():
			s.redrawInput()
		}
		s.mu.Unlock()
		switch end {
		case lineEntered:
			return line, nil
		case inputEnded:
			return "", io.EOF
		}
	}
}

// lineEnd says whether a key ended the line being typed.
type lineEnd uint8

const (
	editing     lineEnd = iota // the line goes on
	lineEntered                // Enter
	inputEnded                 // Ctrl-C, Ctrl-D on an empty line
)

// handle acts on one key. It runs with scr.mu held.
func (t *Terminal) handle(k key) (string, lineEnd) {
	if t.search.active && t.searchKey(k) {
		return "", editing
	}
	ed := t.ed
	switch k.kind {
	case keyText:
		if ed.insert(k.text) && !t.warned {
			t.warned = true
			t.scr.bell()
			t.scr.printLocked(t.scr.tty, []byte(fmt.Sprintf("client: line too long: at most %d bytes; the rest was not taken", client.MaxLine)), t.paintDiagnostic)
		}
	case keyEnter:
		line := ed.String()
		t.hist.Add(line)
		ed.reset()
		t.warned = false
		return line, lineEntered
	case keyEOF:
		if len(ed.buf) == 0 {
			return "", inputEnded
		}
		ed.edit(k.kind)
	case keyInterrupt:
		return "", inputEnded
	case keyUp:
		ed.historyUp(t.hist)
	case keyDown:
		ed.historyDown(t.hist)
	case keyClear:
		t.scr.clearScreen()
	case keyTab:
		t.complete()
	case keySearch:
		t.startSearch()
	default:
		ed.edit(k.kind)
	}
	return "", editing
}

// complete completes the word before the cursor, or lists the
// candidates above the input row.
func (t *Terminal) complete() {
	res, ok := t.comp.complete(t.ed.String(), t.ed.pos)
	switch {
	case !ok:
	case res.list != nil:
		t.scr.printLocked(t.scr.tty, []byte(listing(res.list)), func(l string) string { return t.pal.paint(l, sgrDim) })
	default:
		t.ed.set(res.line, res.pos)
	}
}

// show prints a line of the session (client.Hooks.Print) above the
// input line: the protocol's lines and the help on stdout, the others on
// the terminal as stderr, each colored by what the event says it is. The
// help is followed by the keys.
func (t *Terminal) show(ev client.Event) {
	switch {
	case ev.Kind == client.EventHelp:
		t.scr.print(t.scr.out, []byte(ev.String()), t.pal.helpLine)
		t.scr.print(t.scr.tty, []byte(keysHelp), t.pal.helpLine)
	case ev.Stderr():
		color := stderrColor(ev.Kind)
		t.scr.print(t.scr.tty, []byte(ev.String()), func(l string) string { return t.pal.paint(l, color) })
	default:
		t.scr.print(t.scr.out, []byte(t.pal.line(ev)), asIs)
	}
}

// asIs leaves a line as it is.
func asIs(line string) string { return line }

// paintDiagnostic colors a line of stderr that the session did not hand
// over as an event.
func (t *Terminal) paintDiagnostic(line string) string { return t.pal.paint(line, sgrYellow) }

// Stdout returns the writer for what reaches stdout other than through
// Hooks.Print (the session's own lines come that way): lines printed as
// they are, above the input line. Each Write is whole lines.
func (t *Terminal) Stdout() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		t.scr.print(t.scr.out, p, asIs)
		return len(p), nil
	})
}

// Stderr returns the writer for what reaches stderr other than through
// Hooks.Print: lines printed as diagnostics, above the input line.
func (t *Terminal) Stderr() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		t.scr.print(t.scr.tty, p, t.paintDiagnostic)
		return len(p), nil
	})
}

// Hooks returns the session hooks that print the session's lines and
// feed the progress bars and the username completion.
func (t *Terminal) Hooks() client.Hooks {
	return client.Hooks{
		Progress: t.scr.progress,
		Users:    t.comp.addNames,
		Left:     t.comp.dropName,
		Joined:   t.joined,
		Print:    t.show,
	}
}

// Close takes the prompt and the bars off the screen and gives the
// terminal back as it was. It is safe to call more than once. The goroutine
// reading stdin ends with the process if it is blocked in a read: a read
// of a terminal cannot be interrupted.
func (t *Terminal) Close() error {
	var err error
	t.once.Do(func() {
		t.scr.detach()
		close(t.done)
		if t.winch != nil {
			signal.Stop(t.winch)
		}
		t.wg.Wait()
		t.hist.compact()
		if t.state != nil {
			err = term.Restore(t.fd, t.state)
		}
	})
	return err
}

// writerFunc is an io.Writer calling a function.
type writerFunc func(p []byte) (int, error)

// Write calls f.
func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// pump reads r into src until r fails or done is closed. It is started by
// Open and owned by the Terminal.
func pump(r io.Reader, src chan<- []byte, done <-chan struct{}) {
	defer close(src)
	for {
		b := make([]byte, 4096)
		n, err := r.Read(b)
		if n > 0 {
			select {
			case src <- b[:n]:
			case <-done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}
