package protocol_test

import (
	"bytes"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// fzSame checks that frame, made (by what) from what a parser returned for
// data, is a frame of type typ with data as its payload.
func fzSame(t *testing.T, what string, typ protocol.Type, data, frame []byte) {
	t.Helper()
	want := append(protocol.AppendHeader(nil, typ, int64(len(data))), data...)
	if !bytes.Equal(frame, want) {
		t.Fatalf("%s(%q) re-encodes to %q", what, data, frame)
	}
}

// FuzzExtPayload decodes the same bytes as the payload of every extension
// frame: whatever a parser accepts must follow the rules (valid names, at
// most 1024 of them) and encode back to exactly the same frame.
func FuzzExtPayload(f *testing.F) {
	for _, s := range []string{
		"chunked-file file-upload", "7 bob big.bin 200000", "7 data", "7", "7 2 bob carol big.bin 1048576",
		"3 1048576 2 bob carol", "3 1048576 0", "3 262144", "3 1 bob", "3 0", "2 nobody ghost",
		"joined bob", "left bob", "paused 100", "resumed", "07 1 bob f 1", "1 5 1 a/b", "joined ..",
		"2 alice bob", "0", "150", "0 ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		same := func(what string, typ protocol.Type, frame []byte) { fzSame(t, what, typ, data, frame) }
		names := func(what string, list []string, least int) {
			t.Helper()
			if len(list) < least || len(list) > protocol.MaxRecipients {
				t.Fatalf("%s(%q) accepted %d names", what, data, len(list))
			}
			for _, n := range list {
				if protocol.ValidUsername(n) != nil {
					t.Fatalf("%s(%q) accepted name %q", what, data, n)
				}
			}
		}

		if fs, err := protocol.ParseFeatures(data); err == nil && len(data) > 0 {
			same("ParseFeatures", protocol.ExtHello, protocol.AppendExtHello(nil, fs))
		}
		if id, sender, filename, size, err := protocol.ParseFileBegin(data); err == nil {
			names("ParseFileBegin", []string{sender}, 1)
			if protocol.ValidFilename(filename) != nil || size < 0 {
				t.Fatalf("ParseFileBegin(%q) accepted %q, %d", data, filename, size)
			}
			same("ParseFileBegin", protocol.FileBegin, protocol.AppendFileBegin(nil, id, sender, filename, size))
		}
		if id, chunk, err := protocol.ParseChunk(data); err == nil {
			same("ParseChunk", protocol.FileChunk, append(protocol.ChunkHeader(nil, id, len(chunk)), chunk...))
		}
		if id, err := protocol.ParseFileID(data); err == nil {
			same("ParseFileID", protocol.FileEnd, protocol.AppendFileID(nil, protocol.FileEnd, id))
		}
		if id, list, filename, size, err := protocol.ParseUploadBegin(data); err == nil {
			names("ParseUploadBegin", list, 1)
			if protocol.ValidFilename(filename) != nil || size < 0 {
				t.Fatalf("ParseUploadBegin(%q) accepted %q, %d", data, filename, size)
			}
			same("ParseUploadBegin", protocol.FileBegin, protocol.AppendUploadBegin(nil, id, list, filename, size))
		}
		if id, window, list, err := protocol.ParseFileReady(data); err == nil {
			names("ParseFileReady", list, 0)
			if window <= 0 {
				t.Fatalf("ParseFileReady(%q) accepted window %d", data, window)
			}
			same("ParseFileReady", protocol.FileReady, protocol.AppendFileReady(nil, id, window, list))
		}
		if id, off, err := protocol.ParseFileAck(data); err == nil {
			same("ParseFileAck", protocol.FileAck, protocol.AppendFileAck(nil, id, off))
		}
		if id, list, err := protocol.ParseFileResult(data); err == nil {
			names("ParseFileResult", list, 0)
			same("ParseFileResult", protocol.FileResult, protocol.AppendFileResult(nil, id, list))
		}
		if list, err := protocol.ParseNotOnline(data); err == nil {
			names("ParseNotOnline", list, 1)
			same("ParseNotOnline", protocol.NotOnline, protocol.AppendNotOnline(nil, list))
		}
		if n, list, err := protocol.ParseOnline(data); err == nil {
			if list != nil {
				names("ParseOnline", list, 0)
				if n != len(list) {
					t.Fatalf("ParseOnline(%q) = %d and %d names", data, n, len(list))
				}
			} else if n <= 0 {
				t.Fatalf("ParseOnline(%q) = %d, no list", data, n)
			}
			same("ParseOnline", protocol.Online, protocol.AppendOnline(nil, n, list))
		}
		if event, arg, err := protocol.ParsePresence(data); err == nil {
			if (event == protocol.PresenceJoined || event == protocol.PresenceLeft) && protocol.ValidUsername(arg) != nil {
				t.Fatalf("ParsePresence(%q) accepted name %q", data, arg)
			}
			same("ParsePresence", protocol.Presence, protocol.AppendPresence(nil, event, arg))
		}
		if d, err := protocol.ParseTryAgain(data); err == nil {
			same("ParseTryAgain", protocol.TryAgain, protocol.AppendTryAgain(nil, d))
		}
	})
}
