package testbin

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// builds records what a Suite builds, building nothing.
type builds []string

func (b *builds) build(out, pkg string, race bool) error {
	*b = append(*b, filepath.Base(out)+" "+pkg+" race="+map[bool]string{false: "off", true: "on"}[race])
	return nil
}

// A suite's programs are built once each, the same package with the
// same race setting once only, and a program an environment variable
// names is taken as it is.
func TestSuiteBuild(t *testing.T) {
	given := filepath.Join(t.TempDir(), "other-server")
	if err := os.WriteFile(given, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		race   bool
		env    string // TESTBIN_SERVER
		builds []string
		paths  []string // of server, plain, client, nats
	}{
		{
			name:   "race",
			race:   true,
			builds: []string{"gochatd ./cmd/gochatd race=on", "gochatd-norace ./cmd/gochatd race=off", "gochat ./cmd/gochat race=on", "nats-server github.com/nats-io/nats-server/v2 race=off"},
			paths:  []string{"gochatd", "gochatd-norace", "gochat", "nats-server"},
		},
		{
			name:   "no race: the plain server is the server",
			builds: []string{"gochatd ./cmd/gochatd race=off", "gochat ./cmd/gochat race=off", "nats-server github.com/nats-io/nats-server/v2 race=off"},
			paths:  []string{"gochatd", "gochatd", "gochat", "nats-server"},
		},
		{
			name:   "a prebuilt server",
			race:   true,
			env:    given,
			builds: []string{"gochatd-norace ./cmd/gochatd race=off", "gochat ./cmd/gochat race=on", "nats-server github.com/nats-io/nats-server/v2 race=off"},
			paths:  []string{given, "gochatd-norace", "gochat", "nats-server"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TESTBIN_SERVER", tc.env)
			dir := t.TempDir()
			var server, plain, client, nats string
			s := Suite{Name: "x", Programs: []Program{
				{Path: &server, Pkg: "./cmd/gochatd", Env: "TESTBIN_SERVER"},
				{Path: &plain, Pkg: "./cmd/gochatd", Name: "gochatd-norace", NoRace: true},
				{Path: &client, Pkg: "./cmd/gochat"},
				{Path: &nats, Pkg: "github.com/nats-io/nats-server/v2", Name: "nats-server", NoRace: true},
			}}
			var b builds
			if err := s.build(dir, tc.race, b.build); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b, tc.builds) {
				t.Errorf("built %q, want %q", b, tc.builds)
			}
			for i, got := range []string{server, plain, client, nats} {
				want := tc.paths[i]
				if !filepath.IsAbs(want) {
					want = filepath.Join(dir, want)
				}
				if got != want {
					t.Errorf("program %d at %s, want %s", i, got, want)
				}
			}
		})
	}
}

func TestSuiteBuildFails(t *testing.T) {
	var a, b string
	for _, tc := range []struct {
		name  string
		env   string
		progs []Program
		build func(out, pkg string, race bool) error
		want  string
	}{
		{"a build fails", "", []Program{{Path: &a, Pkg: "./cmd/gochatd"}}, func(string, string, bool) error { return errors.New("no compiler") }, "no compiler"},
		{"two names", "", []Program{{Path: &a, Pkg: "./cmd/gochatd"}, {Path: &b, Pkg: "./other/gochatd"}}, (*builds)(new([]string)).build, "two programs named gochatd"},
		{"a prebuilt program that is not", "/nonexistent/gochatd", []Program{{Path: &a, Pkg: "./cmd/gochatd", Env: "TESTBIN_SERVER"}}, (*builds)(new([]string)).build, "TESTBIN_SERVER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TESTBIN_SERVER", tc.env)
			err := Suite{Name: "x", Programs: tc.progs}.build(t.TempDir(), false, tc.build)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("build: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// Nothing is built when Setup says the tests will skip themselves, and an
// error from Setup ends the run before the tests.
func TestSuitePrepare(t *testing.T) {
	var path string
	progs := []Program{{Path: &path, Pkg: "./cmd/gochatd"}}
	var b builds
	dir, run, err := Suite{Name: "x", Programs: progs, Setup: func() (bool, error) { return false, nil }}.prepare(b.build)
	if dir != "" || !run || err != nil || len(b) != 0 || path != "" {
		t.Errorf("Setup false: dir %q, run %v, err %v, built %q, path %q; want the tests run with nothing built", dir, run, err, b, path)
	}
	dir, run, err = Suite{Name: "x", Programs: progs, Setup: func() (bool, error) { return true, errors.New("no browser under CI") }}.prepare(b.build)
	if dir != "" || run || err == nil || len(b) != 0 {
		t.Errorf("Setup error: dir %q, run %v, err %v, built %q; want the run ended with nothing built", dir, run, err, b)
	}
	if testing.Short() {
		return // nothing is built under -short
	}
	dir, run, err = Suite{Name: "x", Programs: progs}.prepare(b.build)
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if dir == "" || !run || err != nil || path != filepath.Join(dir, "gochatd") {
		t.Errorf("prepare: dir %q, run %v, err %v, path %q; want gochatd built in a new folder", dir, run, err, path)
	}
}
