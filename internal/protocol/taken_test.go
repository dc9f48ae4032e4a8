package protocol_test

import (
	"strconv"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

func TestParseResumed(t *testing.T) {
	for _, tc := range []struct {
		in                  string
		missed, taken       uint64
		exact, has, refused bool
	}{
		{in: "0", missed: 0},
		{in: "13", missed: 13},
		{in: "0 7", taken: 7, exact: true, has: true},
		{in: "2 0", missed: 2, exact: true, has: true},
		{in: "0 ~5", taken: 5, has: true},
		{in: "0 ~0", has: true},
		{in: "9999999999999999999 ~9999999999999999999", missed: 9999999999999999999, taken: 9999999999999999999, has: true},
		{in: "", refused: true},
		{in: "0 ", refused: true},
		{in: "0 ~", refused: true},
		{in: "0 ~~1", refused: true},
		{in: "0 07", refused: true},
		{in: "0 1 2", refused: true},
		{in: "0  1", refused: true},
		{in: "-1 1", refused: true},
		{in: "0 +1", refused: true},
		{in: "0 10000000000000000000", refused: true},
	} {
		missed, taken, exact, has, err := protocol.ParseResumed([]byte(tc.in))
		if tc.refused {
			if err == nil {
				t.Errorf("ParseResumed(%q) accepted: %d %d %v %v", tc.in, missed, taken, exact, has)
			}
			continue
		}
		if err != nil || missed != tc.missed || taken != tc.taken || exact != tc.exact || has != tc.has {
			t.Errorf("ParseResumed(%q) = %d %d %v %v %v, want %d %d %v %v", tc.in, missed, taken, exact, has, err, tc.missed, tc.taken, tc.exact, tc.has)
		}
		if !tc.has {
			continue
		}
		want := "resumed " + strconv.Itoa(len(tc.in)) + " " + tc.in
		if got := string(protocol.AppendResumed(nil, tc.missed, tc.taken, tc.exact)); got != want {
			t.Errorf("AppendResumed = %q, want %q", got, want)
		}
	}
}

func TestTakenTypes(t *testing.T) {
	for ty := protocol.Unknown; ty < protocol.NumTypes; ty++ {
		want := ty == protocol.SendMessage || ty == protocol.RequestUsersList
		if protocol.Taken(ty) != want {
			t.Errorf("Taken(%s) = %v", ty, !want)
		}
	}
	// The server's received (its count of the client's frames) is not
	// one of the frames the client counts.
	if protocol.Counted(protocol.Received) {
		t.Error("received is counted")
	}
	if n := (protocol.Limits{}).MaxPayload(protocol.ToClient, protocol.Received); n < 19 {
		t.Errorf("a received to the client may have %d bytes", n)
	}
	long := protocol.AppendResumed(nil, 1<<63, 1<<63, false)
	if n := (protocol.Limits{}).MaxPayload(protocol.ToClient, protocol.Resumed); n < int64(len(long)-len("resumed 42 ")) {
		t.Errorf("a resumed to the client may have %d bytes, less than %q", n, long)
	}
}

// FuzzResumedPayload: whatever ParseResumed accepts encodes back to
// exactly the same frame.
func FuzzResumedPayload(f *testing.F) {
	for _, s := range []string{"0", "3 17", "0 ~4", "1 ~0", "0 ~", "0 07", "1 2 3"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		missed, taken, exact, has, err := protocol.ParseResumed(data)
		if err != nil {
			return
		}
		if !has {
			fzSame(t, "ParseResumed", protocol.Resumed, data, protocol.AppendCount(nil, protocol.Resumed, missed))
			return
		}
		fzSame(t, "ParseResumed", protocol.Resumed, data, protocol.AppendResumed(nil, missed, taken, exact))
	})
}
