package protocol_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// payloadOf returns the payload of one whole frame, checking that its
// header declares the payload's length and its type is t.
func payloadOf(t *testing.T, frame []byte, typ protocol.Type) []byte {
	t.Helper()
	h, p := ptDecodeOne(t, frame)
	if h.Type != typ {
		t.Fatalf("frame %q is %s, want %s", frame, h.Name, typ)
	}
	return p
}

func TestUploadFramesRoundTrip(t *testing.T) {
	names := []string{"bob", "日本", "carol"}
	p := payloadOf(t, protocol.AppendUploadBegin(nil, 7, names, "big.bin", 1<<30), protocol.FileBegin)
	if string(p) != "7 3 bob 日本 carol big.bin 1073741824" {
		t.Fatalf("file_begin payload %q", p)
	}
	id, gotNames, filename, size, err := protocol.ParseUploadBegin(p)
	if err != nil || id != 7 || !slices.Equal(gotNames, names) || filename != "big.bin" || size != 1<<30 {
		t.Fatalf("ParseUploadBegin(%q) = %d %q %q %d %v", p, id, gotNames, filename, size, err)
	}

	for _, online := range [][]string{nil, {"bob"}, names} {
		p := payloadOf(t, protocol.AppendFileReady(nil, 3, 1<<20, online), protocol.FileReady)
		id, window, got, err := protocol.ParseFileReady(p)
		if err != nil || id != 3 || window != 1<<20 || len(got) != len(online) || !slices.Equal(got, online) && len(online) > 0 {
			t.Fatalf("ParseFileReady(%q) = %d %d %q %v", p, id, window, got, err)
		}
		p = payloadOf(t, protocol.AppendFileResult(nil, 3, online), protocol.FileResult)
		id, got, err = protocol.ParseFileResult(p)
		if err != nil || id != 3 || len(got) != len(online) || !slices.Equal(got, online) && len(online) > 0 {
			t.Fatalf("ParseFileResult(%q) = %d %q %v", p, id, got, err)
		}
	}
	if p := payloadOf(t, protocol.AppendFileReady(nil, 0, 5, nil), protocol.FileReady); string(p) != "0 5 0" {
		t.Fatalf("file_ready to nobody: %q", p)
	}

	p = payloadOf(t, protocol.AppendFileAck(nil, 12, 262144), protocol.FileAck)
	if id, off, err := protocol.ParseFileAck(p); err != nil || id != 12 || off != 262144 {
		t.Fatalf("ParseFileAck(%q) = %d %d %v", p, id, off, err)
	}

	p = payloadOf(t, protocol.AppendNotOnline(nil, []string{"nobody", "ghost"}), protocol.NotOnline)
	if got, err := protocol.ParseNotOnline(p); err != nil || !slices.Equal(got, []string{"nobody", "ghost"}) {
		t.Fatalf("ParseNotOnline(%q) = %q %v", p, got, err)
	}

	for _, tc := range []struct {
		n       int
		names   []string
		payload string
	}{
		{2, []string{"alice", "日本"}, "2 alice 日本"},
		{0, []string{}, "0"},
		{150, nil, "150"}, // too many to list: the count alone
	} {
		p := payloadOf(t, protocol.AppendOnline(nil, tc.n, tc.names), protocol.Online)
		if string(p) != tc.payload {
			t.Fatalf("online payload %q, want %q", p, tc.payload)
		}
		n, names, err := protocol.ParseOnline(p)
		if err != nil || n != tc.n || (names == nil) != (tc.names == nil) || !slices.Equal(names, tc.names) {
			t.Fatalf("ParseOnline(%q) = %d %q %v", p, n, names, err)
		}
	}

	for _, ev := range [][2]string{{"joined", "bob"}, {"left", "日本"}, {"paused", "100"}, {"resumed", ""}} {
		p := payloadOf(t, protocol.AppendPresence(nil, ev[0], ev[1]), protocol.Presence)
		if e, a, err := protocol.ParsePresence(p); err != nil || e != ev[0] || a != ev[1] {
			t.Fatalf("ParsePresence(%q) = %q %q %v", p, e, a, err)
		}
	}

	for _, d := range []time.Duration{0, 1500 * time.Millisecond, protocol.MaxTryAgain} {
		p := payloadOf(t, protocol.AppendTryAgain(nil, d), protocol.TryAgain)
		if got, err := protocol.ParseTryAgain(p); err != nil || got != d {
			t.Fatalf("ParseTryAgain(%q) = %v %v, want %v", p, got, err, d)
		}
	}
}

func TestUploadFramesMalformed(t *testing.T) {
	long := strings.Repeat("n", 33)
	many := "1025" + strings.Repeat(" a", 1025)
	for _, tc := range []struct {
		name  string
		parse func([]byte) error
		bad   []string
	}{
		{"file_begin", func(p []byte) error { _, _, _, _, err := protocol.ParseUploadBegin(p); return err }, []string{
			"", "7", "7 1 bob", "7 1 bob f", "7 1 bob f -1", "7 1 bob f 01", "7 0 f 1", "07 1 bob f 1",
			"7 2 bob f 1", "7 1 b/ob f 1", "7 1 bob ../f 1", "7 1 bob f 1 ", "x 1 bob f 1", "7 1 " + long + " f 1",
			"7 1 bob f 4611686018427387905", "7 1 bob . 1", "7 " + many + " f 1",
		}},
		{"file_ready", func(p []byte) error { _, _, _, err := protocol.ParseFileReady(p); return err }, []string{
			"", "1", "1 5", "1 0 0", "1 5 1", "1 5 2 a", "1 5 1 a ", "1 5 1 a/b", "1 05 0", "1 5 0 ", "1 5 " + many,
		}},
		{"file_ack", func(p []byte) error { _, _, err := protocol.ParseFileAck(p); return err }, []string{
			"", "1", "1 ", "1 x", "1 -1", "1 2 3", "01 2",
		}},
		{"file_result", func(p []byte) error { _, _, err := protocol.ParseFileResult(p); return err }, []string{
			"", "1", "1 x", "1 1", "1 2 a", "1 1 a b", "1 " + many,
		}},
		{"not_online", func(p []byte) error { _, err := protocol.ParseNotOnline(p); return err }, []string{
			"", "0", "1", "1 a b", "2 a", "1 .", many,
		}},
		{"online", func(p []byte) error { _, _, err := protocol.ParseOnline(p); return err }, []string{
			"", " ", "x", "01", "-1", "0 ", "0 a", "1 ", "1 a b", "2 a", "1 .", "1 a/b", "1 " + long, many, "1073741825",
		}},
		{"presence", func(p []byte) error { _, _, err := protocol.ParsePresence(p); return err }, []string{
			"", "joined", "joined ", "joined a b", "left ..", "paused", "paused x", "resumed x", "hello bob", "joined " + long,
		}},
		{"try_again", func(p []byte) error { _, err := protocol.ParseTryAgain(p); return err }, []string{
			"", " ", "x", "-1", "01", "1 ", "1.5", "3600001", "99999999",
		}},
	} {
		for _, b := range tc.bad {
			if err := tc.parse([]byte(b)); !errors.Is(err, protocol.ErrMalformed) {
				t.Errorf("%s %q: err %v, want a malformed payload", tc.name, b, err)
			}
		}
	}
}

// The longest upload frames fit the limits table exactly.
func TestUploadLimitsTight(t *testing.T) {
	var lim protocol.Limits
	name := strings.Repeat("😀", 32)
	names := slices.Repeat([]string{name}, protocol.MaxRecipients)
	const maxID = 9999999999999999999 // 19 digits, the most an id has
	for _, tc := range []struct {
		dir   protocol.Direction
		frame []byte
	}{
		{protocol.ToServer, protocol.AppendUploadBegin(nil, maxID, names, strings.Repeat("f", 200), 1<<62)},
		{protocol.ToClient, protocol.AppendFileReady(nil, maxID, 1<<62, names)},
		{protocol.ToClient, protocol.AppendFileAck(nil, maxID, 1<<62)},
		{protocol.ToClient, protocol.AppendFileResult(nil, maxID, names)},
		{protocol.ToClient, protocol.AppendNotOnline(nil, names)},
		{protocol.ToClient, protocol.AppendOnline(nil, len(names), names)},
		{protocol.ToClient, protocol.AppendTryAgain(nil, protocol.MaxTryAgain)},
		{protocol.ToServer, append(protocol.ChunkHeader(nil, maxID, protocol.MaxUploadChunk), bytes.Repeat([]byte{1}, protocol.MaxUploadChunk)...)},
	} {
		h, _ := ptDecodeOne(t, tc.frame)
		if max := lim.MaxPayload(tc.dir, h.Type); h.Length != max {
			t.Errorf("longest %s: %d bytes, limit %d", h.Name, h.Length, max)
		}
	}
}
