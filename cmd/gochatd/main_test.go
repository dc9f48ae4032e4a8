package main

import (
	"io"
	"testing"

	"github.com/gochat/chat/internal/cli/clitest"
)

// TestHelp checks that -h says what the server is first, then lists every
// flag, aligned, with its default (issue 23 item 20, issue 24 item 4).
func TestHelp(t *testing.T) {
	c := newCommandLine()
	clitest.CheckHelp(t, func(stdout, stderr io.Writer) int { return run([]string{"-h"}, stdout, stderr) },
		serverHelp, c.fs, c.help, c.check,
		"\n  -p, --port=PORT             The server port (0: any free port), defaults to\n",
		"\n      --max-file-size=SIZE    Largest file relayed (bytes, or with K/M/G),\n                              defaults to 1G\n",
		"\n      --http-hosts=PATTERN    Host names or addresses a WebSocket upgrade's\n",
		"\n      --metrics-token-file=FILE\n",
		"\n      --cluster-name=NAME     The cluster's name (its NATS buckets and\n                              subjects), defaults to gochat\n",
	)
}
