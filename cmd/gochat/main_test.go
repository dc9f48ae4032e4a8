package main

import (
	"io"
	"os"
	"testing"

	"github.com/gochat/chat/internal/cli/clitest"
)

// TestHelp checks that -h says what the client is first, then lists every
// flag, aligned, with its default (issue 23 item 20, issue 24 item 4).
func TestHelp(t *testing.T) {
	c := newCommandLine()
	clitest.CheckHelp(t, func(stdout, stderr io.Writer) int { return run([]string{"-h"}, os.Stdin, stdout, stderr) },
		clientHelp, c.fs, c.help, c.check,
		"\n  -u, --user=NAME             The username to join as (required)\n",
		"\n  -p, --port=PORT             The server port, defaults to 15000\n",
		"\n      --max-file-size=SIZE    Largest file sent (bytes, or with K/M/G),\n                              defaults to 1G\n",
		"\nType help once connected to see the commands.\n",
	)
}
