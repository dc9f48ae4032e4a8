// Package terminal is the chat client's front end for a person at a
// terminal. It edits the input line (golang.org/x/term's Terminal: arrows,
// history, Ctrl-A/E/W/U/K, plus Ctrl-R search and Tab completion added
// here), prints what arrives above the input line without disturbing what
// is being typed, shows progress bars for file transfers, and colors the
// output.
//
// It is used only when stdin, stdout and stderr are all terminals (see
// Open); the session itself stays in package client, which gets the
// front end through client.Config (Input, Stdout, Stderr, Hooks). The
// lines of PROTOCOL.md keep their exact text: they go to stdout, at most
// wrapped in color escapes. The prompt, the echo of what is typed, the
// bars and diagnostics go to stderr.
package terminal

import (
	"bytes"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/gochat/chat/internal/client"
)

// hint is shown once when the front end starts.
const hint = "Type help for the commands. Tab completes; Ctrl-D quits."

// keysHelp follows the help text on a terminal.
const keysHelp = `Keys:
  Tab              complete a command, a username or a file path
  Up, Down         recall earlier lines; Ctrl-R searches them
  Ctrl-A, Ctrl-E   go to the start, to the end of the line
  Ctrl-W, Ctrl-U   delete the word before the cursor, all before it
  Ctrl-K           delete from the cursor to the end
  Ctrl-L           clear the screen
  Ctrl-C, Ctrl-D   quit`

// Terminal is the front end of one session. Create it with Open; give it
// to the session with Configure; Close it when the session is over.
type Terminal struct {
	pal    palette
	prompt string
	scr    *screen
	vt     *term.Terminal
	keys   *keyReader
	comp   *completer
	hist   *history
	search search // used only on the editor's goroutine

	fd    int         // stdin's descriptor, when Open made it raw
	state *term.State // stdin's mode before, nil if untouched
	winch chan os.Signal
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
// as when piped.
func Attach(cfg *client.Config, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) (end func()) {
	if !Usable(stdin, stdout, stderr, getenv) {
		return func() {}
	}
	t, err := Open(cfg.User, stdin, stdout.(*os.File), stderr.(*os.File), ColorWanted(getenv))
	if err != nil {
		return func() {}
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
				t.scr.resize(size())
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
		prompt: pal.prompt(user),
		comp:   newCompleter(user),
		hist:   &history{},
		fd:     -1,
		done:   make(chan struct{}),
	}
	t.scr = newScreen(tty, out, pal, func() int { w, _ := size(); return w })
	t.keys = &keyReader{t: t, src: src, done: t.done}
	t.vt = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{t.keys, deviceWriter{t.scr}}, t.prompt)
	t.vt.History = t.hist
	t.vt.AutoCompleteCallback = t.onKey
	t.scr.vt = t.vt
	w, h := size()
	t.vt.SetSize(w, h)
	t.scr.print(tty, []byte(hint), func(l string) string { return pal.paint(l, sgrDim) })
	return t
}

// Configure makes cfg's session use the front end.
func (t *Terminal) Configure(cfg *client.Config) {
	cfg.Input = t
	cfg.Stdout = t.Stdout()
	cfg.Stderr = t.Stderr()
	cfg.Interactive = true
	cfg.Hooks = t.Hooks()
}

// ReadLine implements client.LineSource: it shows the prompt and returns
// the line typed. Ctrl-C, and Ctrl-D on an empty line, end the input
// (io.EOF), which quits the session.
func (t *Terminal) ReadLine() (string, error) {
	line, err := t.vt.ReadLine()
	t.endSearch()
	t.scr.afterLine()
	if err != nil && err != term.ErrPasteIndicator {
		return "", io.EOF
	}
	return line, nil
}

// Stdout returns the writer for the protocol's lines: they are printed
// above the input line, in color if enabled. Each Write is whole lines.
func (t *Terminal) Stdout() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if string(p) == client.HelpText+"\n" {
			t.scr.print(t.scr.out, p, t.pal.helpLine)
			t.scr.print(t.scr.tty, []byte(keysHelp), t.pal.helpLine)
			return len(p), nil
		}
		t.scr.print(t.scr.out, p, t.pal.stdoutLine)
		return len(p), nil
	})
}

// Stderr returns the writer for diagnostics, printed above the input line.
func (t *Terminal) Stderr() io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		t.scr.print(t.scr.tty, p, t.pal.stderrLine)
		return len(p), nil
	})
}

// Hooks returns the session hooks that feed the progress bars and the
// username completion.
func (t *Terminal) Hooks() client.Hooks {
	return client.Hooks{Progress: t.scr.progress, Users: t.comp.addNames}
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
		if t.state != nil {
			err = term.Restore(t.fd, t.state)
		}
	})
	return err
}

// setPrompt changes the prompt and redraws the input line with it. It
// runs on the editor's goroutine, with the editor's lock released.
func (t *Terminal) setPrompt(p string) {
	t.vt.SetPrompt(p)
	t.scr.mu.Lock()
	defer t.scr.mu.Unlock()
	t.scr.paint(func() {})
}

type writerFunc func(p []byte) (int, error)

// Write calls f.
func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// pump reads r into src until r fails or done is closed. It is started by
// Open and owned by the Terminal.
func pump(r io.Reader, src chan<- []byte, done <-chan struct{}) {
	defer close(src)
	for {
		b := make([]byte, 256)
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

// keyReader is the reading side the line editor is given. It hands the
// editor the keys typed, stopping after an Enter so that the screen can
// make room first, and one byte at a time during a search so that
// Backspace and Ctrl-C can be turned into the search's own keys.
type keyReader struct {
	t    *Terminal
	src  <-chan []byte
	done <-chan struct{}
	buf  []byte // keys not yet handed over
}

// Read implements io.Reader for the editor. It runs on the editor's
// goroutine, with the editor's lock released.
func (k *keyReader) Read(p []byte) (int, error) {
	if len(k.buf) == 0 {
		select {
		case b, ok := <-k.src:
			if !ok {
				return 0, io.EOF
			}
			k.buf = b
		case <-k.done:
			return 0, io.EOF
		}
	}
	if k.t.search.active {
		return k.searchKey(p), nil
	}
	n := len(k.buf)
	if i := bytes.IndexAny(k.buf, "\r\n\x12"); i >= 0 {
		n = i + 1
		if k.buf[i] == '\r' && n < len(k.buf) && k.buf[n] == '\n' {
			n++
		}
		if k.buf[i] != keyCtrlR {
			k.t.scr.beforeEnter()
		}
	}
	n = copy(p, k.buf[:n])
	k.buf = k.buf[n:]
	return n, nil
}

// searchKey hands over one key byte during a search, translated.
func (k *keyReader) searchKey(p []byte) int {
	c := k.buf[0]
	k.buf = k.buf[1:]
	t := k.t
	switch {
	case c == keyDelete || c == keyCtrlH:
		return copy(p, string(keySearchBack))
	case c == keyCtrlC:
		c = keyCtrlG // Ctrl-C cancels the search, as in a shell
	case c == '\r' || c == '\n':
		t.endSearch() // take the line found
		t.scr.beforeEnter()
		if c == '\r' && len(k.buf) > 0 && k.buf[0] == '\n' {
			k.buf = k.buf[1:]
		}
	case c < 0x20 && c != keyCtrlR && c != keyCtrlG && c != keyTab:
		t.endSearch() // an editing key: keep the line found, edit it
	}
	p[0] = c
	return 1
}
