package protocol_test

import (
	"bytes"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// TestHeartbeatFrames: ping and pong read back as what they are, carry no
// payload either way, and are never counted for a resume (a pong the
// client counted would shift every position after it).
func TestHeartbeatFrames(t *testing.T) {
	for _, tc := range []struct {
		frame []byte
		typ   protocol.Type
		wire  string
	}{
		{protocol.PingFrame, protocol.Ping, "ping 0 "},
		{protocol.PongFrame, protocol.Pong, "pong 0 "},
	} {
		if string(tc.frame) != tc.wire {
			t.Errorf("%v frame = %q, want %q", tc.typ, tc.frame, tc.wire)
		}
		h, err := protocol.NewReader(bytes.NewReader(tc.frame)).ReadHeader()
		if err != nil || h.Type != tc.typ || h.Length != 0 {
			t.Errorf("%q reads as %+v, %v", tc.frame, h, err)
		}
		for _, d := range []protocol.Direction{protocol.ToServer, protocol.ToClient} {
			if n := (protocol.Limits{}).MaxPayload(d, tc.typ); n != 0 {
				t.Errorf("MaxPayload(%d, %v) = %d, want 0", d, tc.typ, n)
			}
		}
		if protocol.Counted(tc.typ) || protocol.CountedFrame(tc.frame) {
			t.Errorf("%v is counted", tc.typ)
		}
		if !tc.typ.Empty() {
			t.Errorf("%v is not Empty", tc.typ)
		}
	}
}
