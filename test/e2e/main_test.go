package e2e

import (
	"flag"
	"testing"

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
	testbin.Main(m, testbin.Suite{
		Name: "e2e",
		// E2E_SERVER_BIN / E2E_CLIENT_BIN run the suite against prebuilt
		// programs instead (e.g. another implementation of PROTOCOL.md).
		Programs: []testbin.Program{
			{Path: &serverBin, Pkg: "./cmd/gochatd", Env: "E2E_SERVER_BIN"},
			{Path: &clientBin, Pkg: "./cmd/gochat", Env: "E2E_CLIENT_BIN"},
		},
		Setup: func() (bool, error) {
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
			return true, nil
		},
	})
}
