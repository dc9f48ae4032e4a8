// Command chatbench benchmarks the chat server over loopback, each
// workload beside a baseline; see docs/PERFORMANCE.md and `chatbench -h`.
package main

import (
	"os"

	"github.com/gochat/chat/internal/bench"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		// Hidden roles the tool re-executes itself in.
		switch args[0] {
		case bench.WorkerCommand:
			os.Exit(bench.RunWorker(args[1:], os.Stdin, os.Stdout, os.Stderr))
		case bench.StormWorkerCommand:
			os.Exit(bench.RunStormWorker(args[1:], os.Stdin, os.Stdout, os.Stderr))
		case bench.ServerCommand:
			os.Exit(bench.RunServer(args[1:], os.Stdout, os.Stderr))
		case bench.ClientCommand:
			os.Exit(bench.RunClient(args[1:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	os.Exit(bench.Main(args, os.Stdout, os.Stderr))
}
