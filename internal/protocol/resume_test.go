package protocol_test

import (
	"errors"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

var testToken = protocol.Token{0x00, 0x01, 0x7f, 0x80, 0xff, 0x10, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde}

const testTokenHex = "00017f80ff10abcdef123456789abcde"

func TestResumeFramesRoundTrip(t *testing.T) {
	if got := testToken.String(); got != testTokenHex {
		t.Fatalf("token = %q, want %q", got, testTokenHex)
	}
	if f := string(protocol.AppendSession(nil, testToken, 30000)); f != "session 38 "+testTokenHex+" 30000" {
		t.Fatalf("session frame %q", f)
	}
	tok, w, err := protocol.ParseSession([]byte(testTokenHex + " 30000"))
	if err != nil || tok != testToken || w != 30000 {
		t.Fatalf("ParseSession = %v %d %v", tok, w, err)
	}
	if f := string(protocol.AppendResume(nil, "bob", testToken, 17)); f != "resume 39 bob "+testTokenHex+" 17" {
		t.Fatalf("resume frame %q", f)
	}
	name, tok, n, err := protocol.ParseResume([]byte("bob " + testTokenHex + " 17"))
	if err != nil || name != "bob" || tok != testToken || n != 17 {
		t.Fatalf("ParseResume = %q %v %d %v", name, tok, n, err)
	}
	if f := string(protocol.AppendCount(nil, protocol.Received, 64)); f != "received 2 64" {
		t.Fatalf("received frame %q", f)
	}
	if f := string(protocol.AppendCount(nil, protocol.Resumed, 0)); f != "resumed 1 0" {
		t.Fatalf("resumed frame %q", f)
	}
	if f := string(protocol.AppendEmpty(nil, protocol.ResumeFailed)); f != "resume_failed 0 " {
		t.Fatalf("resume_failed frame %q", f)
	}
}

func TestResumeFramesMalformed(t *testing.T) {
	for _, tc := range []struct {
		what string
		p    string
		fn   func([]byte) error
	}{
		{"session without window", testTokenHex, sessionErr},
		{"session short token", testTokenHex[:31] + " 1", sessionErr},
		{"session upper-case token", "00017F80ff10abcdef123456789abcde 1", sessionErr},
		{"session leading zero", testTokenHex + " 01", sessionErr},
		{"session negative", testTokenHex + " -1", sessionErr},
		{"session two spaces", testTokenHex + "  1", sessionErr},
		{"resume two fields", "bob " + testTokenHex, resumeErr},
		{"resume four fields", "bob " + testTokenHex + " 1 2", resumeErr},
		{"resume bad name", "b/ob " + testTokenHex + " 1", resumeErr},
		{"resume empty name", " " + testTokenHex + " 1", resumeErr},
		{"resume bad token", "bob zz017f80ff10abcdef123456789abcde 1", resumeErr},
		{"resume count too long", "bob " + testTokenHex + " 12345678901234567890", resumeErr},
		{"received empty", "", countErr},
		{"received sign", "+1", countErr},
		{"received leading zero", "007", countErr},
		{"received space", "1 ", countErr},
	} {
		if err := tc.fn([]byte(tc.p)); !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%s: %q gave %v, want ErrMalformed", tc.what, tc.p, err)
		}
	}
}

func sessionErr(p []byte) error { _, _, err := protocol.ParseSession(p); return err }
func resumeErr(p []byte) error  { _, _, _, err := protocol.ParseResume(p); return err }
func countErr(p []byte) error   { _, err := protocol.ParseCountFrame(p); return err }

func TestCounted(t *testing.T) {
	counted := map[protocol.Type]bool{
		protocol.ForwardMessage: true, protocol.ResponseUsersList: true, protocol.NotOnline: true,
		protocol.Presence: true, protocol.Online: true,
	}
	for typ := protocol.Unknown; typ < protocol.NumTypes; typ++ {
		// Client-to-server types never reach a client: whatever Counted
		// says of them, only the server-to-client ones matter.
		if (protocol.Limits{}).MaxPayload(protocol.ToClient, typ) < 0 {
			continue
		}
		if got := protocol.Counted(typ); got != counted[typ] {
			t.Errorf("Counted(%s) = %v, want %v", typ, got, counted[typ])
		}
		frame := protocol.AppendHeader(nil, typ, 0)
		if got := protocol.CountedFrame(frame); got != counted[typ] && typ != protocol.Unknown {
			t.Errorf("CountedFrame(%q) = %v, want %v", frame, got, counted[typ])
		}
	}
	if protocol.CountedFrame([]byte("forward_messagex 1 a")) {
		t.Error("CountedFrame counts a type it does not know")
	}
}

// FuzzResumePayload decodes the same bytes as the payload of every frame
// of the resume extension: what a parser accepts must encode back to
// exactly the same frame, with a valid name.
func FuzzResumePayload(f *testing.F) {
	for _, s := range []string{
		testTokenHex + " 30000", "bob " + testTokenHex + " 0", "bob " + testTokenHex + " 9999999999999999999",
		"0", "64", "007", testTokenHex, "ùù " + testTokenHex + " 1", "bob " + testTokenHex + " 1 2",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		same := func(what string, typ protocol.Type, frame []byte) { fzSame(t, what, typ, data, frame) }
		if tok, w, err := protocol.ParseSession(data); err == nil {
			same("ParseSession", protocol.Session, protocol.AppendSession(nil, tok, w))
		}
		if name, tok, n, err := protocol.ParseResume(data); err == nil {
			if protocol.ValidUsername(name) != nil {
				t.Fatalf("ParseResume(%q) accepted name %q", data, name)
			}
			same("ParseResume", protocol.Resume, protocol.AppendResume(nil, name, tok, n))
		}
		if n, err := protocol.ParseCountFrame(data); err == nil {
			same("ParseCountFrame", protocol.Received, protocol.AppendCount(nil, protocol.Received, n))
		}
		if int64(len(data)) > (protocol.Limits{}).MaxPayload(protocol.ToServer, protocol.Resume) {
			if _, _, _, err := protocol.ParseResume(data); err == nil {
				t.Fatalf("ParseResume accepted %d bytes, more than the limit", len(data))
			}
		}
	})
}
