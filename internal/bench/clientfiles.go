package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
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
	err := flagPairs(args, func(flag, v string) (err error) {
		switch flag {
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
		return err
	})
	if err != nil {
		fmt.Fprintf(stderr, "chatbench %s: %v\n", ClientCommand, err)
		return 2
	}
	cfg.Addr = net.JoinHostPort(host, port)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return client.Run(ctx, cfg)
}

// startClientProc starts bin (or this tool as ClientCommand) joining the
// server at addr as name, saving files in dir.
func startClientProc(bin, addr, name, dir string, maxFile int64, stderr io.Writer) (*childProc, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	bin, args, err := orSelf(bin, ClientCommand, []string{"-u", name, "-a", host, "-p", port, "--download-dir", dir, "--max-file-size", strconv.FormatInt(maxFile, 10)})
	if err != nil {
		return nil, err
	}
	return startChild(bin, args, stderr, 1024)
}

// writeSource writes an F-byte file of fileContent at path and syncs it,
// so that its writeback does not run during the runs that read it.
func writeSource(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = writeChunks(fileContent(), size, func(p []byte) error {
		_, err := f.Write(p)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
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
	run := newFileRun(r)
	prefix, rnames := run.prefix, run.rnames
	var (
		conns clientSet // the chatter
		procs []*childProc
		lines sync.WaitGroup // the readers of the processes' lines
	)
	defer conns.close()
	defer func() {
		for _, p := range procs {
			p.stop(5 * time.Second)
		}
		lines.Wait()
	}()
	for _, name := range rnames {
		rdir := filepath.Join(dir, name)
		if err := os.Mkdir(rdir, 0o755); err != nil {
			return res, err
		}
		defer os.RemoveAll(rdir)
		p, err := startClientProc(bin, t.Addr, name, rdir, size, stderr)
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
	lines.Go(func() { // the sender prints nothing on stdout here; drain it anyway
		for range sender.lines {
		}
	})
	chatter, err := conns.dial(ctx, t.Addr, prefix+"c", 64<<10, 64<<10, handlers{})
	if err != nil {
		return res, err
	}
	if err := waitJoined(ctx, chatter, prefix, r+2, nil); err != nil {
		return res, err
	}
	fileLine := "file: " + prefix + "s: " + filepath.Base(src)
	for k, p := range procs[:r] {
		var tally *chatTally // recipient 0's chat only
		if k == 0 {
			tally = &run.chat
		}
		lines.Go(func() {
			got := func() { run.ended(k, nil) }
			if !p.awaitFile(fileLine, "msg: "+prefix+"c: ", tally, got) {
				run.ended(k, fmt.Errorf("recipient %d ended without its file: line", k))
			}
		})
	}

	var srvRSS, cliRSS *rssSampler
	if res.RSSBase, srvRSS, err = watchRSS(t.PID); err != nil {
		return res, err
	}
	res.Weighed = t.PID != 0
	if res.ClientRSSBase, cliRSS, err = watchRSS(procs[0].cmd.Process.Pid); err != nil {
		srvRSS.Peak()
		return res, err
	}
	stopChat := chatDuring(chatter, rnames[0], chatRate)
	t0 := time.Now()
	err = sender.send(fmt.Sprintf("file %d %s %s", r, strings.Join(rnames, " "), src))
	if err == nil {
		err = run.awaitEnds(ctx, fmt.Errorf("file of %d bytes not saved by the recipients in %v", size, timeout))
	}
	res.ChatSent = stopChat()
	res.RSSPeak = srvRSS.Peak()
	res.ClientRSSPeak = cliRSS.Peak()
	if err != nil {
		return res, err
	}
	res.Secs, res.MBps = transferRate(t0, run.doneAt, size)
	for k, name := range rnames {
		saved := filepath.Join(dir, name, name+"_"+filepath.Base(src))
		if st, err := os.Stat(saved); err != nil || st.Size() != size {
			return res, fmt.Errorf("recipient %d saved %v (%v), want %d bytes", k, st, err, size)
		}
	}
	run.chat.await(&res.filesResult)
	return res, nil
}

// awaitFile reads a recipient's lines to their end: got is called at the
// line fileLine, which ends its transfer, and, if chat is not nil, the
// lines that start with msgPrefix are chat whose latency it tallies. It
// reports whether fileLine came.
func (p *childProc) awaitFile(fileLine, msgPrefix string, chat *chatTally, got func()) bool {
	came := false
	for line := range p.lines {
		switch {
		case line == fileLine && !came:
			came = true
			got()
		case chat != nil && strings.HasPrefix(line, msgPrefix):
			chat.record([]byte(line[len(msgPrefix):]))
		}
	}
	return came
}

// syncedCopy is the clients mode's baseline: the file src sent over
// loopback TCP from this process to r receivers in it, each writing it to
// a file in dir and syncing it, with plain reads and writes (1 MiB
// chunks sent, 256 KiB reads), as a program that copies a file would. It
// returns the seconds from opening src until every copy is synced.
func syncedCopy(ctx context.Context, src, dir string, r int, timeout time.Duration) (float64, error) {
	copyPath := func(k int) string { return filepath.Join(dir, fmt.Sprintf("copy%d.bin", k)) }
	defer func() { // after the clock stops
		for k := range r {
			os.Remove(copyPath(k))
		}
	}()
	return loopbackCopy(ctx, r, timeout, func(write func([]byte) error) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, fileWriteChunk)
		for {
			n, rerr := f.Read(buf)
			if err := write(buf[:n]); err != nil {
				return err
			}
			if rerr == io.EOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	}, func(k int, c net.Conn) error {
		f, err := os.Create(copyPath(k))
		if err != nil {
			return err
		}
		// Plain reads and writes: no splice.
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{c}, make([]byte, fileReadChunk))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// clientFilesRuns yields the runs of the clients file mode for a file of
// size bytes, one for each of cfg.ClientBins, all sending one source
// file; it reports whether to go on.
func clientFilesRuns(cfg Config, size int64, stderr io.Writer, yield func(job) bool) bool {
	dir, err := os.MkdirTemp("", "chatbench-files-")
	if err != nil {
		return yield(failed{err})
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "bench.bin")
	if err := writeSource(src, size); err != nil {
		return yield(failed{err})
	}
	for _, bin := range cfg.ClientBins {
		if !yield(clientFilesTrial(cfg, size, bin, src, dir, stderr)) {
			return false
		}
	}
	return true
}

// clientFilesTrial is a run of the clients file mode with the client
// binary bin, beside its baseline (a synced file-to-file TCP copy).
func clientFilesTrial(cfg Config, size int64, bin, src, dir string, stderr io.Writer) job {
	r := cfg.FileRecipients
	client := "client=own-process"
	if bin != "" {
		client = "client=" + bin
	}
	t := trial[clientFilesResult]{
		workload: Files,
		params:   fmt.Sprintf("size=%dB recipients=%d mode=%s chat-rate=%d/s %s %s %s", size, r, ModeClients, cfg.ChatRate, ownParam(cfg), client, loadParam()),
		ours: side[clientFilesResult]{servers: ownServer(cfg, max(r+16, 64)), measure: func(ctx context.Context, nodes []*target) (clientFilesResult, error) {
			return runClientFiles(ctx, nodes[0], bin, src, dir, size, r, cfg.ChatRate, cfg.Timeout, stderr)
		}},
		rows: func(row rowFunc, res, base clientFilesResult) []Row {
			nan := math.NaN()
			mib := func(v int64, weighed bool) float64 {
				if !weighed {
					return nan
				}
				return float64(v) / (1 << 20)
			}
			mbTarget, chatTarget := "", ""
			if size == 1<<30 && r == 1 {
				mbTarget, chatTarget = ">= 0.9x", "< 50"
			}
			return []Row{
				row("transfer, file to synced file", "MB/s", res.MBps, float64(size)/base.Secs/1e6, mbTarget),
				row("transfer time", "s", res.Secs, base.Secs, ""),
				row("server RSS growth (peak)", "MiB", mib(res.RSSPeak-res.RSSBase, res.Weighed), nan, ""),
				row("recipient client RSS before", "MiB", mib(res.ClientRSSBase, true), nan, ""),
				row("recipient client RSS growth (peak)", "MiB", mib(res.ClientRSSPeak-res.ClientRSSBase, true), nan, ""),
				row("chat msgs sent during transfer", "msgs", float64(res.ChatSent), nan, ""),
				row("chat msgs printed by the recipient", "msgs", float64(res.ChatRecv), nan, ""),
				row("chat latency p50 (to printed)", "ms", ms(res.Chat.P50), nan, ""),
				row("chat latency p99 (to printed)", "ms", ms(res.Chat.P99), nan, chatTarget),
				row("chat latency max (to printed)", "ms", ms(res.Chat.Max), nan, ""),
			}
		},
	}
	if !cfg.NoBaseline {
		t.baseName, t.base = "synced-copy", &side[clientFilesResult]{measure: func(ctx context.Context, _ []*target) (clientFilesResult, error) {
			secs, err := syncedCopy(ctx, src, dir, r, cfg.Timeout)
			return clientFilesResult{filesResult: filesResult{Secs: secs}}, err
		}}
	}
	return t
}
