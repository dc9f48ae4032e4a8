package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The tool re-executes itself as a scale or storm worker, a server or
	// a client; in the tests, the test binary plays those roles.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case WorkerCommand:
			os.Exit(RunWorker(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case StormWorkerCommand:
			os.Exit(RunStormWorker(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case ServerCommand:
			os.Exit(RunServer(os.Args[2:], os.Stdout, os.Stderr))
		case ClientCommand:
			os.Exit(RunClient(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	goleak.VerifyTestMain(m)
}
