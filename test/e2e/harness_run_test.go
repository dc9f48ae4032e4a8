package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// One-shot runs (command-line checks).
// ---------------------------------------------------------------------------

type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runOnce runs bin with args and stdin closed, and waits at most d for it.
func runOnce(t testing.TB, bin string, d time.Duration, args ...string) result {
	t.Helper()
	skipShort(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q still running after %v\nstdout: %s\nstderr: %s", filepath.Base(bin), args, d, quote(out.String()), quote(errb.String()))
	}
	return result{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode(), elapsed: time.Since(start)}
}
