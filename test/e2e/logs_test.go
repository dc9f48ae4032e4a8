package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// OPERATIONS.md, "Logs": the server's stderr records.

// logRecord returns a matcher of the server's JSON log records (--log-format
// json) with message msg whose fields hold every pair of want.
func logRecord(msg string, want map[string]string) func(string) bool {
	return func(line string) bool {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			return false
		}
		for k, v := range want {
			if rec[k] != v {
				return false
			}
		}
		return true
	}
}

// A client that never reads while another floods it is cut off as a slow
// consumer, and the server's log says so: a warning with the cause, and the
// connection's close record with reason "slow consumer".
func TestServerLogsSlowConsumer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--log-format", "json", "--send-queue", "256K", "--stall-timeout", "2s")
	rawStalled(t, srv, "slow") // never reads
	fast := rawJoin(t, srv, "fast")
	msg := fr("send_message", "1 slow "+strings.Repeat("z", 65536))
	// The queue and the socket buffers hold a few MiB; stop once the server
	// has cut slow off (at most 3000 frames, about 200 MB). The sender is
	// paused while slow's backlog is over the pace mark, until slow is cut
	// off for taking nothing for the stall limit of 2 s.
	sent := 0
	for !srv.out.contains("disconnected: slow") {
		if sent == 3000 {
			t.Fatalf("slow was never cut off after %d frames of 64 KiB\n%s", sent, srv.dump())
		}
		if err := fast.TryWrite(msg); err != nil {
			t.Fatalf("the sender blocked or was cut off after %d frames: %v\n%s", sent, err, srv.dump())
		}
		sent++
	}
	srv.errs.waitAny(t, timeout, `the record "connection closed" of slow with reason "slow consumer"`,
		logRecord("connection closed", map[string]string{"user": "slow", "reason": "slow consumer"}))
	srv.errs.waitAny(t, timeout, `the warning "cut connection off" of slow with reason "slow consumer"`,
		logRecord("cut connection off", map[string]string{"user": "slow", "reason": "slow consumer", "level": "WARN"}))
	// The sender was not cut off.
	fast.Write(fr("request_users_list", ""))
	fast.Expect(protocol.ResponseUsersList, "1 fast")
	closedFast := logRecord("connection closed", map[string]string{"user": "fast"})
	for _, l := range srv.errs.remainingAll() {
		if closedFast(l) {
			t.Fatalf("the sender's connection was closed: %s\n%s", l, srv.dump())
		}
	}
	srv.out.skipTo(t, "request_users_list: fast", timeout) // after the flood's lines
}
