package testbin

import (
	"debug/buildinfo"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

// raceSetting returns the -race build setting recorded in info ("" if none).
func raceSetting(info *debug.BuildInfo) string {
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value
		}
	}
	return ""
}

// The programs are built with the race detector exactly when this test
// binary was (`go test -race`), so the README's test command checks them
// for data races too.
func TestBuildFollowsRace(t *testing.T) {
	t.Setenv("E2E_RACE", "")
	self, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	testRace := raceSetting(self) == "true"
	if Race() != testRace {
		t.Fatalf("Race() = %v, but the test binary's -race setting is %q", Race(), raceSetting(self))
	}

	out := filepath.Join(t.TempDir(), "server")
	if err := Build(out, "./cmd/gochatd"); err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := raceSetting(info) == "true"; got != testRace {
		t.Fatalf("built %s with -race=%q; the test binary has -race=%q", info.Path, raceSetting(info), raceSetting(self))
	}

	t.Setenv("E2E_RACE", "1")
	if !Race() {
		t.Fatal("E2E_RACE=1 must build with the race detector")
	}
}

// The commands are read from the contract itself, so a help text checked
// against them is checked against PROTOCOL.md, not against itself.
func TestClientCommands(t *testing.T) {
	got, err := ClientCommands()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"msg <N> <user1> ... <userN> <message>",
		"list",
		"file <N> <user1> ... <userN> <path>",
		"help",
		"quit",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ClientCommands() = %q, want %q", got, want)
	}
	for _, doc := range []string{"", "## 5. Client\n\nno table\n", "## 5. Client\n\n| input | action |\n| --- | --- |\n| end of input | quit |\n"} {
		if cmds, err := parseClientCommands(doc); err == nil {
			t.Errorf("parseClientCommands(%q) = %q, want an error", doc, cmds)
		}
	}
}

func TestMissingFromHelp(t *testing.T) {
	cmds := []string{"msg <N> <user1> ... <userN> <message>", "list", "quit"}
	for _, c := range []struct {
		help string
		want []string
	}{
		{"Commands:\n  msg <N> <user1> ... <userN> <message>   send\n  list\n\tquit   leave\n", nil},
		{"", cmds},
		{"msg <N> <users> <message>\nlist\nquit\n", cmds[:1]},                   // another format
		{"  e.g. msg <N> <user1> ... <userN> <message>\nlistx\nquit", cmds[:2]}, // not at a line's start; a longer word
	} {
		if got := missingFromHelp(cmds, c.help); !slices.Equal(got, c.want) {
			t.Errorf("missingFromHelp(%q) = %q, want %q", c.help, got, c.want)
		}
	}
}

// A program's stdout and stderr are collected line by line, its last
// unterminated line included; Stop ends it with SIGTERM and reports its
// status.
func TestStart(t *testing.T) {
	p := Start(t, "sh", exec.Command("sh", "-c", `echo one; echo "two 2" >&2; printf 'x\r\ny'; trap 'exit 3' TERM; while read -r l; do echo "got $l"; done`))
	p.Out.WaitLine(t, "one", 10*time.Second)
	if m := p.Errs.WaitMatch(t, regexp.MustCompile(`^two (\d)$`), 10*time.Second); m[1] != "2" {
		t.Fatalf("submatches %q", m)
	}
	p.Out.WaitLine(t, "x\r", 10*time.Second)
	p.Send(t, "line")
	p.Out.WaitLine(t, "ygot line", 10*time.Second)
	if n := p.Out.Count(func(s string) bool { return s != "" }); n != 3 {
		t.Fatalf("%d lines, want 3: %q", n, p.Out.Snapshot())
	}
	if code := p.Stop(t, 10*time.Second); code != 3 {
		t.Fatalf("exit status %d after SIGTERM, want 3", code)
	}
}

// A wait for a line that never comes fails once the stream has ended.
func TestWaitEndsWithTheStream(t *testing.T) {
	p := Start(t, "true", exec.Command("true"))
	if code := p.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Out.WaitLine(ft, "never", time.Minute)
	}()
	<-done
	if !ft.failed {
		t.Fatal("the wait returned without failing")
	}
}

// fatalRecorder records a Fatalf and ends its goroutine, as testing does.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}
