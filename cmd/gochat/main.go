// Command gochat is the terminal chat client of PROTOCOL.md (the course's "client").
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/gochat/chat/internal/cli"
	"github.com/gochat/chat/internal/client"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal"
)

// help prints the help text on w.
func help(w io.Writer) {
	fmt.Fprint(w, `Client
-u username | --user=username The username of Client
-p PORT | --port=PORT The server port, defaults to 15000
-a ADDRESS | --address=ADDRESS The server ip or hostname, defaults to localhost
-h | --help Print this help

Extensions:
--download-dir=DIR      Where received files are saved, defaults to the working directory
--max-file-size=SIZE    Largest file sent (bytes, or with K/M/G), defaults to 1G
--max-incoming-file-size=SIZE
                        Largest file received, defaults to 1G; a larger one is
                        refused unsaved, and the files being received at once may
                        declare at most 4 times as much together
--plain                 Speak only the course's protocol. By default the client asks the
                        server for extensions: files move in chunks, so chat keeps
                        flowing during a transfer, a file to nobody online is never
                        sent, and you are told who got it and who named is not
                        online; a server without them is joined again without them
--extensions            The default (kept for scripts that give it)
--join-notices          Also be told as users join and leave (not with --plain)
--no-history            Keep no history of the lines typed on a terminal (by default
                        kept in $XDG_STATE_HOME/gochat/history or
                        ~/.local/state/gochat/history)
--tls                   Speak TLS to the server
--tls-ca=FILE           Trust the server certificates signed by this PEM CA (or the
                        self-signed certificate itself); implies --tls

Type help once connected to see the commands.
`)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the client with args and the standard streams, and returns its
// exit status.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("client", pflag.ContinueOnError)
	user := fs.StringP("user", "u", "", "")
	port := new(int)
	cli.IntVarP(fs, port, "port", "p", 15000)
	addr := fs.StringP("address", "a", "localhost", "")
	downloadDir := fs.String("download-dir", ".", "")
	maxFile := cli.Size(protocol.DefaultMaxFileSize)
	fs.Var(&maxFile, "max-file-size", "")
	maxIncoming := cli.Size(protocol.DefaultMaxFileSize)
	fs.Var(&maxIncoming, "max-incoming-file-size", "")
	plain := fs.Bool("plain", false, "")
	extensions := fs.Bool("extensions", false, "")
	joinNotices := fs.Bool("join-notices", false, "")
	noHistory := fs.Bool("no-history", false, "")
	useTLS := fs.Bool("tls", false, "")
	tlsCA := fs.String("tls-ca", "", "")
	check := func() error {
		if err := cli.CheckPort(*port, 1); err != nil {
			return err
		}
		if st, err := os.Stat(*downloadDir); err != nil || !st.IsDir() {
			return errors.New("--download-dir must name an existing directory")
		}
		if *plain && (*extensions || *joinNotices) {
			return errors.New("--plain speaks no extension: not with --extensions or --join-notices")
		}
		return nil
	}
	if code, done := cli.Parse(fs, args, help, stdout, stderr, check); done {
		return code
	}
	if !fs.Changed("user") {
		fmt.Fprintln(stdout, "Missing Username.")
		help(stdout)
		return 1
	}

	var tlsCfg *tls.Config
	if *useTLS || *tlsCA != "" {
		var err error
		if tlsCfg, err = cli.ClientTLS(*addr, *tlsCA); err != nil {
			fmt.Fprintf(stderr, "client: %v\n", err)
			return 1
		}
	}

	signal.Ignore(syscall.SIGPIPE)
	// Each of these ends the session as quit does: a disconnect is sent
	// and no half-received file is left behind. SIGHUP is the terminal
	// going away.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	cfg := client.Config{
		User:                *user,
		Addr:                net.JoinHostPort(*addr, strconv.Itoa(*port)),
		MaxFileSize:         int64(maxFile),
		MaxIncomingFileSize: int64(maxIncoming),
		DownloadDir:         *downloadDir,
		Interactive:         term.IsTerminal(int(stdin.Fd())),
		Stdin:               stdin,
		Stdout:              stdout,
		Stderr:              stderr,
		TLS:                 tlsCfg,
		Extensions:          !*plain,
		Presence:            *joinNotices,
	}
	// On a terminal (stdin, stdout and stderr), a person types: line
	// editing, completion, progress bars, colors. Otherwise, plain lines.
	historyFile := terminal.HistoryFile(os.Getenv)
	if *noHistory {
		historyFile = ""
	}
	endTerminal := terminal.Attach(&cfg, stdin, stdout, stderr, os.Getenv, historyFile)
	defer endTerminal()
	return client.Run(ctx, cfg)
}
