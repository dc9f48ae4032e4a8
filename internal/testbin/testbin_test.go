package testbin

import (
	"debug/buildinfo"
	"path/filepath"
	"runtime/debug"
	"testing"
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
	if err := Build(out, "./cmd/server"); err != nil {
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
