package testbin

import (
	"testing"

	"github.com/gochat/chat/internal/freeport"
)

// FreePort returns a loopback port that was free a moment ago, for a
// program under test to listen on (freeport.Pick).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
