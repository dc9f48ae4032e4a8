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
	"syscall"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/gochat/chat/internal/cli"
	"github.com/gochat/chat/internal/client"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/terminal"
)

// clientHelp is the help of -h, its flags' defaults taken from their
// definitions (cli.Help).
var clientHelp = cli.Help{
	Purpose: "gochat is a terminal chat client: it joins a chat server (gochatd, or any " +
		"server of docs/PROTOCOL.md) as one user and reads commands on stdin: msg, list, " +
		"file, cancel, help and quit. On a terminal it edits lines, completes names and " +
		"shows progress; piped, stdout carries exactly the protocol's lines.",
	Usage: "gochat -u NAME [-p PORT] [-a ADDRESS] [options]",
	Sections: []cli.HelpSection{
		{Title: "", Flags: []cli.HelpFlag{
			{Name: "user", Text: "NAME\tThe username to join as (required)"},
			{Name: "port", Text: "PORT\tThe server port"},
			{Name: "address", Text: "ADDRESS\tThe server's IP address or host name; or a comma-separated list of HOST[:PORT] (PORT from -p when omitted), the others tried in turn when a lost connection is resumed"},
			{Name: "help", Text: "Print this help"},
		}},
		{Title: "Options (docs/CLIENT.md)", Flags: []cli.HelpFlag{
			{Name: "download-dir", Text: "DIR\tWhere received files are saved, defaults to the working directory"},
			{Name: "max-file-size", Text: "SIZE\tLargest file sent (bytes, or with K/M/G)"},
			{Name: "max-incoming-file-size", Text: "SIZE\tLargest file received; a larger one is refused unsaved, and the files being received at once may declare at most 4 times as much together"},
			{Name: "plain", Text: "Speak only the course's protocol. By default the client asks the server for extensions: files move in chunks, so chat keeps flowing during a transfer, a file to nobody online is never sent, and you are told who got it and who named is not online; a server without them is joined again without them"},
			{Name: "extensions", Text: "The default (kept for scripts that give it)"},
			{Name: "no-resume", Text: "End the session when the connection is lost, instead of reconnecting and resuming it (not with --plain, which never resumes)"},
			{Name: "join-notices", Text: "Also be told as users join and leave (not with --plain)"},
			{Name: "no-history", Text: "Keep no history of the lines typed on a terminal (by default kept in $XDG_STATE_HOME/gochat/history or ~/.local/state/gochat/history)"},
			{Name: "tls", Text: "Speak TLS to the server"},
			{Name: "tls-ca", Text: "FILE\tTrust the server certificates signed by this PEM CA (or the self-signed certificate itself); implies --tls"},
		}},
	},
	Footer: "Type help once connected to see the commands.",
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the client with args and the standard streams, and returns its
// exit status.
func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("gochat", pflag.ContinueOnError)
	help := func(w io.Writer) { clientHelp.Write(w, fs) }
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
	noResume := fs.Bool("no-resume", false, "")
	var addrs []string
	useTLS := fs.Bool("tls", false, "")
	tlsCA := fs.String("tls-ca", "", "")
	check := func() error {
		if err := cli.CheckPort(*port, 1); err != nil {
			return err
		}
		if st, err := os.Stat(*downloadDir); err != nil || !st.IsDir() {
			return errors.New("--download-dir must name an existing directory")
		}
		if *plain && (*extensions || *joinNotices || *noResume) {
			return errors.New("--plain speaks no extension: not with --extensions, --join-notices or --no-resume")
		}
		var err error
		addrs, err = client.ParseAddresses(*addr, *port)
		return err
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
		host, _, _ := net.SplitHostPort(addrs[0])
		if tlsCfg, err = cli.ClientTLS(host, *tlsCA); err != nil {
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
		Addr:                addrs[0],
		Others:              addrs[1:],
		NoResume:            *noResume,
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
