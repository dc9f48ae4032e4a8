package testbin

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// Program is a program a black-box suite runs, which Main builds before
// the tests.
type Program struct {
	// Path receives the program's path.
	Path *string
	// Pkg is what to build: a path in the module such as "./cmd/gochatd",
	// or a dependency's package.
	Pkg string
	// Name is the program's file name (default: the last element of Pkg).
	Name string
	// NoRace builds the program without the race detector whatever Race
	// reports: a third party's program, or one whose memory figures the
	// detector would inflate. Where Race reports false, it is the same
	// build as the one without NoRace, built once.
	NoRace bool
	// Env, if set, names an environment variable that may give the path
	// of a prebuilt program to run instead (another implementation of
	// PROTOCOL.md, say).
	Env string
}

// Suite is what Main needs to know of a black-box suite.
type Suite struct {
	// Name begins what Main prints ("e2e").
	Name string
	// Programs are built, once, into a temporary folder that Main removes
	// after the tests.
	Programs []Program
	// Setup, if set, runs once the flags are parsed, before anything is
	// built. It returns false when every test of the suite will skip
	// itself (a browser is missing, say), so that nothing is built; an
	// error ends the run.
	Setup func() (build bool, err error)
	// ShortSkipsAll makes -short end the run at once, saying so on
	// stdout. Otherwise -short builds nothing and runs the tests, for
	// each to skip itself.
	ShortSkipsAll bool
}

// Main is the TestMain of a suite that runs the project's programs: it
// parses the flags, builds s.Programs (unless -short or s.Setup says the
// tests will not run them), runs the tests, removes what it built, and
// fails the run if a goroutine is left once every test is done (the
// harness's output readers and reapers end in each test's cleanup). It
// does not return.
func Main(m *testing.M, s Suite) {
	flag.Parse()
	dir, run, err := s.prepare(BuildRace)
	code := 0
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		code = 1
	case run:
		code = m.Run()
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: leaked goroutines: %v\n", s.Name, err)
			code = 1
		}
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// prepare does what Main does before the tests, building with buildRace.
// It returns the folder of the programs it built ("" if none), whether
// the tests are to run, and an error that ends the run (the folder is
// still to be removed).
func (s Suite) prepare(buildRace func(out, pkg string, race bool) error) (dir string, run bool, err error) {
	build := !testing.Short()
	if !build && s.ShortSkipsAll {
		fmt.Printf("%s: -short: skipping the suite (it runs the real programs)\n", s.Name)
		return "", false, nil
	}
	if s.Setup != nil {
		ok, err := s.Setup()
		if err != nil {
			return "", false, err
		}
		build = build && ok
	}
	if !build {
		return "", true, nil
	}
	if dir, err = os.MkdirTemp("", "gochat-"+s.Name+"-bin-"); err != nil {
		return "", false, err
	}
	return dir, true, s.build(dir, Race(), buildRace)
}

// build builds s.Programs into dir, race saying whether with the race
// detector, and sets their paths: one given by its Env as it is, the same
// package and race setting built once.
func (s Suite) build(dir string, race bool, buildRace func(out, pkg string, race bool) error) error {
	type build struct {
		pkg  string
		race bool
	}
	built := map[build]string{}
	names := map[string]bool{}
	for _, p := range s.Programs {
		if p.Env != "" {
			if given := os.Getenv(p.Env); given != "" {
				abs, err := filepath.Abs(given)
				if err == nil {
					_, err = os.Stat(abs)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", p.Env, err)
				}
				*p.Path = abs
				continue
			}
		}
		b := build{p.Pkg, race && !p.NoRace}
		if path, ok := built[b]; ok {
			*p.Path = path
			continue
		}
		name := p.Name
		if name == "" {
			name = filepath.Base(p.Pkg)
		}
		if names[name] {
			return fmt.Errorf("two programs named %s", name)
		}
		names[name] = true
		path := filepath.Join(dir, name)
		if err := buildRace(path, p.Pkg, b.race); err != nil {
			return err
		}
		built[b] = path
		*p.Path = path
	}
	return nil
}
