package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/cli"
)

// TestHelp checks that -h says what the client is first, then lists every
// flag, aligned, with its default (issue 23 item 20, issue 24 item 4).
func TestHelp(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-h"}, os.Stdin, &out, &errs); code != 0 {
		t.Fatalf("-h: exit %d, stderr %q", code, errs.String())
	}
	text := out.String()
	if !strings.HasPrefix(text, "gochat is a terminal chat client") {
		t.Errorf("the help does not open with what the program is:\n%s", text)
	}
	// Every flag, with its default: checked against the flags the client
	// runs with, once -h has added its own.
	c := newCommandLine()
	var again bytes.Buffer
	if code, done := cli.Parse(c.fs, []string{"-h"}, c.help, &again, &errs, c.check); code != 0 || !done || again.String() != text {
		t.Fatalf("-h on newCommandLine's flags: exit %d, done %v, the same help %v", code, done, again.String() == text)
	}
	if err := clientHelp.CheckText(c.fs, text); err != nil {
		t.Errorf("%v:\n%s", err, text)
	}
	for _, want := range []string{
		"\n  -u, --user=NAME             The username to join as (required)\n",
		"\n  -p, --port=PORT             The server port, defaults to 15000\n",
		"\n      --max-file-size=SIZE    Largest file sent (bytes, or with K/M/G),\n                              defaults to 1G\n",
		"\nType help once connected to see the commands.\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the help lacks %q:\n%s", want, text)
		}
	}
}
