// Package ptytest is the black-box test suite of the client's terminal
// front end. It builds cmd/gochat and cmd/gochatd once (TestMain) and runs
// the client in a pseudo-terminal (github.com/creack/pty), typing keys
// into it and reading its screen through a small terminal emulator
// (internal/terminal/termtest); and, for comparison, with pipes, checking
// that piped output stays byte-exact to PROTOCOL.md.
//
// Run it from the module root:
//
//	go test -race ./test/pty/ -count=1
//
// Under -race the programs are built with the race detector too
// (internal/testbin); a data race or a panic either reports fails the test
// that ran it.
//
// Nothing in the suite sleeps to wait for a condition: every wait is on an
// event (screen content, an output line, a frame, an exit) with a deadline.
package ptytest
