// Command server runs the chat server of PROTOCOL.md.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/cli"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
)

func help(w io.Writer) {
	fmt.Fprint(w, `Server
-p PORT | --port=PORT The server port, defaults to 15000
-a ADDRESS | --address=ADDRESS The server ip or hostname, defaults to localhost
-h | --help Print this help

Extensions:
--max-clients=N         Most users joined at once (MAX_NUM_CLIENTS), defaults to 10
--max-file-size=SIZE    Largest file relayed (bytes, or with K/M/G), defaults to 1G
--join-timeout=DURATION Close connections that have not joined in time, defaults to 30s
--send-queue=SIZE       Bytes that may wait for one slow client, defaults to 8M
--log-level=LEVEL       debug, info, warn or error (logs go to stderr), defaults to info
--log-format=FORMAT     text or json, defaults to text
`)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	port := fs.IntP("port", "p", 15000, "")
	addr := fs.StringP("address", "a", "localhost", "")
	maxClients := fs.Int("max-clients", server.DefaultMaxClients, "")
	maxFile := cli.Size(protocol.DefaultMaxFileSize)
	fs.Var(&maxFile, "max-file-size", "")
	joinTimeout := fs.Duration("join-timeout", server.DefaultJoinTimeout, "")
	sendQueue := cli.Size(server.DefaultSendQueueBytes)
	fs.Var(&sendQueue, "send-queue", "")
	logLevel := fs.String("log-level", "info", "")
	logFormat := fs.String("log-format", "text", "")
	check := func() error {
		if err := cli.CheckPort(*port, 0); err != nil {
			return err
		}
		if *maxClients < 1 {
			return fmt.Errorf("--max-clients must be at least 1")
		}
		if *joinTimeout <= 0 {
			return fmt.Errorf("--join-timeout must be positive")
		}
		if sendQueue > 1<<40 {
			return fmt.Errorf("--send-queue too large")
		}
		_, err := cli.Logger(io.Discard, *logFormat, *logLevel)
		return err
	}
	if code, done := cli.Parse(fs, args, help, stdout, stderr, check); done {
		return code
	}
	logger, _ := cli.Logger(stderr, *logFormat, *logLevel)

	srv := server.New(server.Config{
		MaxClients:     *maxClients,
		MaxFileSize:    int64(maxFile),
		JoinTimeout:    *joinTimeout,
		SendQueueBytes: int(sendQueue),
		Stdout:         stdout,
		Logger:         logger,
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(stderr, "server: cannot listen: %v\n", err)
		return 1
	}
	logger.Info("listening", "addr", ln.Addr().String(), "max_clients", *maxClients)

	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		fmt.Fprintf(stderr, "server: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown incomplete", "err", err)
	}
	<-served
	return 0
}
