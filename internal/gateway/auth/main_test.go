package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: no waiter of
// Reserve, no server, no connection.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
