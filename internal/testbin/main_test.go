package testbin

import (
	"testing"

	"go.uber.org/goleak"
)

// The collectors and reapers of Start end with their program.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
