// Package testbin builds the project's programs for the black-box test
// suites (test/e2e, test/pty, test/soak, test/cluster, test/browser), which
// run the real binaries (Main is those suites' TestMain), runs them with
// their output collected line by line (Start), and reads from
// docs/PROTOCOL.md what those suites check them against.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Race reports whether Build builds the programs with the race detector:
// when the test binary itself was built with it (`go test -race`), or when
// E2E_RACE=1 is set in the environment.
func Race() bool {
	return raceEnabled || os.Getenv("E2E_RACE") == "1"
}

// Build runs `go build -o out pkg` in the module root, where pkg is a
// path such as "./cmd/gochatd", adding -race when Race reports true, so that
// a data race in a program run by a test is found as well as one in the
// test itself.
func Build(out, pkg string) error { return BuildRace(out, pkg, Race()) }

// BuildRace is Build with the race detector on or off as race says (a
// third-party program such as nats-server needs no race build).
func BuildRace(out, pkg string, race bool) error {
	// `go test` puts the go command of its own GOROOT first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("finding the go command: %w", err)
	}
	root, err := moduleRoot(goBin)
	if err != nil {
		return err
	}
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %v (in %s) failed: %v\n%s", args, root, err, b)
	}
	return nil
}

// moduleRoot returns the directory of the main module's go.mod.
func moduleRoot(goBin string) (string, error) {
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(mod))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("finding the module root: not in a module")
	}
	return filepath.Dir(gomod), nil
}
