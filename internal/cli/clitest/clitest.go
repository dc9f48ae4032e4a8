// Package clitest checks a program's help (cli.Help) in the program's
// own tests: both programs' tests ran the same checks, written out twice
// (issue 24).
package clitest

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/gochat/chat/internal/cli"
)

// CheckHelp checks a program's -h. run runs the program with -h and the
// given output streams, and returns its exit status; fs, help and check
// are a fresh command line's flags, help and check, as cli.Parse takes
// them, and h is the program's help. -h must exit 0 with a help that
// opens with h.Purpose, that is the same as -h on fs writes (once -h has
// added its own flag), that passes h.CheckText (every flag, with its
// default) and that holds each of want (lines whose layout the test
// pins).
func CheckHelp(t *testing.T, run func(stdout, stderr io.Writer) int, h cli.Help, fs *pflag.FlagSet, help func(io.Writer), check func() error, want ...string) {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(&out, &errs); code != 0 {
		t.Fatalf("-h: exit %d, stderr %q", code, errs.String())
	}
	text := out.String()
	purpose := strings.Fields(h.Purpose)
	if words := strings.Fields(text); len(words) < len(purpose) || !slices.Equal(words[:len(purpose)], purpose) {
		t.Errorf("the help does not open with what the program is:\n%s", text)
	}
	var again bytes.Buffer
	if code, done := cli.Parse(fs, []string{"-h"}, help, &again, &errs, check); code != 0 || !done || again.String() != text {
		t.Fatalf("-h on a fresh command line's flags: exit %d, done %v, the same help %v", code, done, again.String() == text)
	}
	if err := h.CheckText(fs, text); err != nil {
		t.Errorf("%v:\n%s", err, text)
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("the help lacks %q:\n%s", w, text)
		}
	}
}
