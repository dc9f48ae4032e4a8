package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gochat/chat/internal/client"
)

// ModeClients is the files mode in which the sender and the recipients
// are real client processes (cmd/gochat, or this tool re-executed as
// one): the file goes from a file on disk to a file on disk, synced and
// renamed by the recipient before it prints its file: line. Its baseline
// is a file-to-file copy over loopback TCP that syncs before it counts as
// done (issue 19, part 3).
const ModeClients = "clients"

// ClientCommand is the hidden first argument that makes the tool run as a
// chat client (RunClient), for the clients file mode.
const ClientCommand = "_client"

// RunClient runs the chat client as cmd/gochat does with its defaults
// (extensions asked for), for ClientCommand: flags -u, -p, -a,
// --download-dir and --max-file-size, each with a value.
func RunClient(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg := client.Config{Addr: "127.0.0.1:15000", DownloadDir: ".", Extensions: true, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	host, port := "127.0.0.1", "15000"
	if len(args)%2 != 0 {
		fmt.Fprintf(stderr, "chatbench %s: %s: flag without a value\n", ClientCommand, args[len(args)-1])
		return 2
	}
	for i := 0; i < len(args); i += 2 {
		v := args[i+1]
		var err error
		switch args[i] {
		case "-u":
			cfg.User = v
		case "-p":
			port = v
		case "-a":
			host = v
		case "--download-dir":
			cfg.DownloadDir = v
		case "--max-file-size":
			cfg.MaxFileSize, err = strconv.ParseInt(v, 10, 64)
		default:
			err = errors.New("unknown flag")
		}
		if err != nil {
			fmt.Fprintf(stderr, "chatbench %s: %s %s: %v\n", ClientCommand, args[i], v, err)
			return 2
		}
	}
	cfg.Addr = net.JoinHostPort(host, port)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return client.Run(ctx, cfg)
}

// clientProc is a client process of the clients file mode.
type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, line by line; closed at its end
}

// startClientProc starts bin (or this tool as ClientCommand) joining the
// server at addr as name, saving files in dir.
func startClientProc(bin, addr, name, dir string, maxFile int64, stderr io.Writer) (*clientProc, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	args := []string{"-u", name, "-a", host, "-p", port, "--download-dir", dir, "--max-file-size", strconv.FormatInt(maxFile, 10)}
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
		args = append([]string{ClientCommand}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &clientProc{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p, nil
}

// send writes a line of input to the client.
func (p *clientProc) send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// stop ends the client with quit (or, after wait, a kill) and waits for
// it, its stdout read to the end.
func (p *clientProc) stop(wait time.Duration) {
	p.send("quit")
	p.stdin.Close()
	timer := time.AfterFunc(wait, func() { p.cmd.Process.Kill() })
	defer timer.Stop()
	for range p.lines {
	}
	p.cmd.Wait()
}

// writeSource writes an F-byte file of fileContent at path and syncs it,
// so that its writeback does not run during the runs that read it.
func writeSource(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	chunk := fileContent()
	for left := size; left > 0; {
		k := min(left, int64(len(chunk)))
		if _, err := f.Write(chunk[:k]); err != nil {
			f.Close()
			return err
		}
		left -= k
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// clientFilesResult is one run of the clients file mode.
type clientFilesResult struct {
	filesResult
	// The recipient 0's client process RSS before the transfer and its
	// peak during it.
	ClientRSSBase, ClientRSSPeak int64
}

// runClientFiles sends the file src (size bytes) from a client process to
// r client processes (bin), through the server t, while an in-process
// client sends chat messages at chatRate per second to the first
// recipient. The transfer runs from the sender's file command until every
// recipient has printed its file: line (the file synced and in place); a
// chat message's latency runs until the recipient has printed it. dir
// holds the recipients' download folders.
func runClientFiles(ctx context.Context, t *target, bin, src, dir string, size int64, r, chatRate int, timeout time.Duration, stderr io.Writer) (clientFilesResult, error) {
	var res clientFilesResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	prefix := runPrefix()
	rnames := make([]string, r)
	var (
		procs   []*clientProc
		chatter *chatClient
		wg      sync.WaitGroup // the readers of the processes' lines and of chatter
	)
	defer func() {
		for _, p := range procs {
			p.stop(5 * time.Second)
		}
		if chatter != nil {
			chatter.nc.Close()
		}
		wg.Wait()
	}()
	for k := range rnames {
		rnames[k] = fmt.Sprintf("%sr%d", prefix, k)
		rdir := filepath.Join(dir, rnames[k])
		if err := os.Mkdir(rdir, 0o755); err != nil {
			return res, err
		}
		defer os.RemoveAll(rdir)
		p, err := startClientProc(bin, t.Addr, rnames[k], rdir, size, stderr)
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
	}
	sender, err := startClientProc(bin, t.Addr, prefix+"s", dir, size, stderr)
	if err != nil {
		return res, err
	}
	procs = append(procs, sender)
	wg.Add(1)
	go func() { // the sender prints nothing on stdout here; drain it anyway
		defer wg.Done()
		for range sender.lines {
		}
	}()
	if chatter, err = dialChat(ctx, t.Addr, nil, prefix+"c", 64<<10, 64<<10); err != nil {
		return res, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		chatter.readLoop(handlers{})
	}()
	if err := waitJoined(ctx, chatter, prefix, r+2, nil); err != nil {
		return res, err
	}

	// The recipients' lines: file: lines end the transfer, msg: lines
	// are chat whose latency is measured (recipient 0's only).
	var (
		mu       sync.Mutex
		chat     Histogram // guarded by mu
		chatRecv int64     // guarded by mu
		doneAt   = make([]time.Time, r)
		done     = make(chan error, r)
	)
	fileLine := "file: " + prefix + "s: " + filepath.Base(src)
	msgPrefix := "msg: " + prefix + "c: "
	for k, p := range procs[:r] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := false
			for line := range p.lines {
				switch {
				case line == fileLine && !got:
					got = true
					doneAt[k] = time.Now()
					done <- nil
				case strings.HasPrefix(line, msgPrefix) && k == 0:
					_, ts, ok := readStamp([]byte(line[len(msgPrefix):]))
					lat := now() - ts
					mu.Lock()
					if ok {
						chat.Record(lat)
					}
					chatRecv++
					mu.Unlock()
				}
			}
			if !got {
				done <- fmt.Errorf("recipient %d ended without its file: line", k)
			}
		}()
	}

	if t.PID != 0 {
		if res.RSSBase, err = readRSS(t.PID); err != nil {
			return res, err
		}
	}
	rpid := procs[0].cmd.Process.Pid
	if res.ClientRSSBase, err = readRSS(rpid); err != nil {
		return res, err
	}
	var srvRSS *rssSampler
	if t.PID != 0 {
		srvRSS = sampleRSS(t.PID, 10*time.Millisecond)
	}
	cliRSS := sampleRSS(rpid, 10*time.Millisecond)
	stopChat := chatDuring(chatter, rnames[0], chatRate)
	t0 := time.Now()
	err = sender.send(fmt.Sprintf("file %d %s %s", r, strings.Join(rnames, " "), src))
	for range r {
		if err != nil {
			break
		}
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("file of %d bytes not saved by the recipients in %v", size, timeout)
		}
	}
	res.ChatSent = stopChat()
	if srvRSS != nil {
		res.RSSPeak = srvRSS.Peak()
	}
	res.ClientRSSPeak = cliRSS.Peak()
	if err != nil {
		return res, err
	}
	res.Secs, res.MBps = transferRate(t0, doneAt, size)
	for k, name := range rnames {
		saved := filepath.Join(dir, name, name+"_"+filepath.Base(src))
		if st, err := os.Stat(saved); err != nil || st.Size() != size {
			return res, fmt.Errorf("recipient %d saved %v (%v), want %d bytes", k, st, err, size)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := chatRecv
		mu.Unlock()
		if n >= res.ChatSent {
			break
		}
	}
	mu.Lock()
	res.ChatRecv = chatRecv
	res.Chat = chat.Summary()
	mu.Unlock()
	return res, nil
}

// syncedCopy is the clients mode's baseline: the file src sent over
// loopback TCP from this process to r receivers in it, each writing it to
// a file in dir and syncing it, with plain reads and writes (1 MiB
// chunks sent, 256 KiB reads), as a program that copies a file would. It
// returns the seconds from opening src until every copy is synced.
func syncedCopy(ctx context.Context, src, dir string, r int, timeout time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type end struct {
		at  time.Time
		err error
	}
	ends := make(chan end, r)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := range r {
			c, err := ln.Accept()
			if err != nil {
				ends <- end{err: err}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(timeout))
				path := filepath.Join(dir, fmt.Sprintf("copy%d.bin", k))
				defer os.Remove(path)
				f, err := os.Create(path)
				if err != nil {
					ends <- end{err: err}
					return
				}
				// Plain reads and writes: no splice.
				_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{c}, make([]byte, fileReadChunk))
				if err == nil {
					err = f.Sync()
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				ends <- end{at: time.Now(), err: err}
			}()
		}
	}()
	conns := make([]net.Conn, r)
	for k := range conns {
		var d net.Dialer
		if conns[k], err = d.DialContext(ctx, "tcp", ln.Addr().String()); err != nil {
			return 0, err
		}
		defer conns[k].Close()
	}
	t0 := time.Now()
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, fileWriteChunk)
	for {
		n, rerr := f.Read(buf)
		for _, c := range conns {
			c.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := c.Write(buf[:n]); err != nil {
				return 0, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	for _, c := range conns {
		c.(*net.TCPConn).CloseWrite()
	}
	last := t0
	for range r {
		e := <-ends
		if e.err != nil {
			return 0, e.err
		}
		if e.at.After(last) {
			last = e.at
		}
	}
	return last.Sub(t0).Seconds(), nil
}
