// Package testbin builds the project's programs for the black-box test
// suites (test/e2e, test/pty, test/soak), which run the real binaries.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Build runs `go build -o out pkg` in the module root, where pkg is a
// path such as "./cmd/server". With E2E_RACE=1 in the environment the
// program is built with the race detector.
func Build(out, pkg string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	mod, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("finding the module root: %w", err)
	}
	root := filepath.Dir(string(mod[:len(mod)-1]))
	args := []string{"build", "-o", out}
	if os.Getenv("E2E_RACE") == "1" {
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
