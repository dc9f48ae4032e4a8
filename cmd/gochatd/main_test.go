package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/cli"
)

// TestHelp checks that -h says what the server is first, then lists every
// flag, aligned, with its default (issue 23 item 20, issue 24 item 4).
func TestHelp(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"-h"}, &out, &errs); code != 0 {
		t.Fatalf("-h: exit %d, stderr %q", code, errs.String())
	}
	text := out.String()
	if !strings.HasPrefix(text, "gochatd is a chat server") {
		t.Errorf("the help does not open with what the program is:\n%s", text)
	}
	// Every flag, with its default: checked against the flags the server
	// runs with, once -h has added its own.
	c := newCommandLine()
	var again bytes.Buffer
	if code, done := cli.Parse(c.fs, []string{"-h"}, c.help, &again, &errs, c.check); code != 0 || !done || again.String() != text {
		t.Fatalf("-h on newCommandLine's flags: exit %d, done %v, the same help %v", code, done, again.String() == text)
	}
	if err := serverHelp.CheckText(c.fs, text); err != nil {
		t.Errorf("%v:\n%s", err, text)
	}
	for _, want := range []string{
		"\n  -p, --port=PORT             The server port (0: any free port), defaults to\n",
		"\n      --max-file-size=SIZE    Largest file relayed (bytes, or with K/M/G),\n                              defaults to 1G\n",
		"\n      --http-hosts=PATTERN    Host names or addresses a WebSocket upgrade's\n",
		"\n      --metrics-token-file=FILE\n",
		"\n      --cluster-name=NAME     The cluster's name (its NATS buckets and\n                              subjects), defaults to gochat\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the help lacks %q:\n%s", want, text)
		}
	}
}
