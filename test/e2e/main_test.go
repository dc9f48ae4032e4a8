package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/testbin"
)

// Paths of the two programs under test, built once by TestMain.
var (
	serverBin string
	clientBin string
)

// defaultParallel is used for -parallel when the command line does not set
// it: the tests spend nearly all their time waiting on child processes and
// sockets, so more of them than GOMAXPROCS (2 on CI) can run at once.
const defaultParallel = "8"

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			parallelSet = true
		}
	})
	if !parallelSet {
		if f := flag.Lookup("test.parallel"); f != nil {
			_ = f.Value.Set(defaultParallel)
		}
	}

	if testing.Short() {
		// Every test skips itself (skipShort); nothing to build.
		os.Exit(m.Run())
	}

	dir, err := os.MkdirTemp("", "gochat-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	// E2E_SERVER_BIN / E2E_CLIENT_BIN run the suite against prebuilt
	// programs instead (e.g. another implementation of PROTOCOL.md).
	for _, b := range []struct {
		dst      *string
		env, pkg string
	}{
		{&serverBin, "E2E_SERVER_BIN", "./cmd/gochatd"},
		{&clientBin, "E2E_CLIENT_BIN", "./cmd/gochat"},
	} {
		if p := os.Getenv(b.env); p != "" {
			abs, err := filepath.Abs(p)
			if err == nil {
				_, err = os.Stat(abs)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "e2e: %s: %v\n", b.env, err)
				os.RemoveAll(dir)
				os.Exit(1)
			}
			*b.dst = abs
			continue
		}
		*b.dst = filepath.Join(dir, filepath.Base(b.pkg))
		if err := testbin.Build(*b.dst, b.pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}

	code := m.Run()
	os.RemoveAll(dir)

	// Every goroutine of the harness (output readers, process reapers) ends in
	// the test's cleanup, so none may be left once all tests are done.
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
		code = 1
	}
	os.Exit(code)
}
