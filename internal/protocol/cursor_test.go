package protocol_test

import (
	"bytes"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// resumePayload strips a frame's header.
func resumePayload(frame []byte) []byte {
	i := bytes.IndexByte(frame, ' ')
	j := bytes.IndexByte(frame[i+1:], ' ')
	return frame[i+1+j+1:]
}

func TestResumeAtRoundTrip(t *testing.T) {
	var tok protocol.Token
	tok[0], tok[15] = 0xab, 0x01
	for _, tc := range []struct {
		n, j   uint64
		cursor string
	}{
		{0, 0, ""},
		{7, 0, "-"},
		{1 << 40, 3, "n2/1f n1/2=5 n2/1f=7"},
	} {
		frame := protocol.AppendResumeAt(nil, "bob", tok, tc.n, tc.j, []byte(tc.cursor))
		name, got, n, j, cursor, err := protocol.ParseResumeAt(resumePayload(frame))
		if err != nil || name != "bob" || got != tok || n != tc.n || string(cursor) != tc.cursor || tc.cursor != "" && j != tc.j {
			t.Errorf("%+v: parsed %q %v %d %d %q, %v", tc, name, got, n, j, cursor, err)
		}
	}
	for _, bad := range []string{
		"bob " + tok.String() + " 1 2",             // four fields
		"bob " + tok.String() + " 1 x -",           // j not a number
		"bob " + tok.String() + " 1 2 ",            // an empty cursor
		"bob " + tok.String() + " 01 2 -",          // a leading zero
		"b\x00b " + tok.String() + " 1 2 - n1/1=1", // a bad name
	} {
		if _, _, _, _, _, err := protocol.ParseResumeAt([]byte(bad)); err == nil {
			t.Errorf("ParseResumeAt(%q) accepted", bad)
		}
	}
}

// FuzzParseResumeAt: the resume parser never panics, and what it accepts
// encodes back to the same bytes.
func FuzzParseResumeAt(f *testing.F) {
	var tok protocol.Token
	f.Add(resumePayload(protocol.AppendResumeAt(nil, "bob", tok, 3, 0, nil)))
	f.Add(resumePayload(protocol.AppendResumeAt(nil, "bob", tok, 3, 2, []byte("n2/1 n2/1=4"))))
	f.Add([]byte("a b c d e"))
	f.Fuzz(func(t *testing.T, p []byte) {
		name, tok, n, j, cursor, err := protocol.ParseResumeAt(p)
		if err != nil {
			return
		}
		if got := resumePayload(protocol.AppendResumeAt(nil, name, tok, n, j, cursor)); !bytes.Equal(got, p) {
			t.Fatalf("re-encoded %q, want %q", got, p)
		}
	})
}
