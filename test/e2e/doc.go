// Package e2e is the black-box end-to-end test suite of the chat server and
// client. It builds cmd/gochatd and cmd/gochat once (TestMain), runs them as
// real processes and talks to them over real TCP sockets, checking the exact
// stdout lines, exit codes and frames that PROTOCOL.md (shared/spec) requires.
//
// Run it from the module root:
//
//	go test -race ./test/e2e/ -count=1
//
// Under -race the two programs are built with the race detector too
// (internal/testbin), so a data race or a panic reported by either program
// fails the test that ran it. E2E_RACE=1 builds them so without -race.
// With -short the suite is skipped.
//
// Set E2E_SERVER_BIN and/or E2E_CLIENT_BIN to the path of a prebuilt program
// to test it instead of building cmd/gochatd or cmd/gochat.
//
// The harness lives in the harness_*_test.go files (harness_test.go lists
// them): startServer, startClient, joinClient, dialRaw, newFakeServer and
// lineLog (see its doc comment for the waiting semantics). Nothing in the suite sleeps to wait for a condition:
// every wait is on an event (a line, a frame, an exit) with a deadline.
package e2e
