package e2e

// The harness of the suite, by concern:
//
//	harness_lines_test.go   lineLog: a captured output stream, and the waits on its lines
//	harness_proc_test.go    proc: a child process with piped stdin and captured output
//	harness_server_test.go  the real server: startServer, free and refusing ports
//	harness_client_test.go  the real client: startClient, joinClient, quit, assertServing
//	harness_run_test.go     runOnce: one-shot runs for command-line checks
//	harness_raw_test.go     rawConn: raw TCP connections speaking the framing
//	harness_fake_test.go    fakeServer: a listener in the test that a real client joins
//
// This file holds what they all share.

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// timeout is the default deadline of every wait in the suite. It is generous
// because CI runs the suite with -race on a 2-core machine.
const timeout = 10 * time.Second

// skipShort skips the test under -short: the suite runs the real programs
// and takes minutes. Every way of starting a program calls it.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped with -short: the e2e suite runs the real programs and takes minutes")
	}
}

// quote renders s with Go escapes, shortening very long strings.
func quote(s string) string {
	const max = 240
	if len(s) > max {
		return strconv.Quote(s[:max]) + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// hostileFilenames returns filenames that PROTOCOL.md section 3 refuses:
// paths (abs among them, an absolute path of the test's own), dot names,
// control, invisible and bidi characters, invalid UTF-8, more than 200
// bytes.
func hostileFilenames(abs string) []string {
	return []string{
		"../evil", "../../evil", "/evil", abs, "..", ".", "a/b", "sub/", `a\b`, `..\evil`, "",
		"a\x00b", "a\x01b", "a\x7fb", "a\tb", "a\u0085b", "a\u200bb", "a\u202eb", "a\u00a0b", "a\xffb",
		strings.Repeat("f", 201),
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
