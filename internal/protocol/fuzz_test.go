package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"testing/iotest"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/gochat/chat/internal/protocol"
)

// fzEvent is one observable step of a decode, compared between two decodes
// of the same bytes.
type fzEvent struct {
	Op     string // "header", "payload", "field", "discard"
	Header protocol.Header
	Data   string
	Err    string // error class, "" for success
}

// fzErrClass reduces an error to what must be identical however the stream
// is split.
func fzErrClass(err error) string {
	switch {
	case err == nil:
		return ""
	case err == io.EOF:
		return "EOF"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "UnexpectedEOF"
	case errors.Is(err, protocol.ErrTooLong):
		return "TooLong"
	case errors.Is(err, protocol.ErrMalformed):
		return "Malformed"
	}
	return "other: " + err.Error()
}

func fzTypeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c == '_' || c >= '0' && c <= '9'
}

// fzDecode decodes src, choosing for each frame how to consume the payload
// from mode and the frame's index, and checks the Reader's invariants.
func fzDecode(t *testing.T, src io.Reader, size int, mode uint8, total int) []fzEvent {
	r := protocol.NewReaderSize(src, size)
	var ev []fzEvent
	for i := 0; ; i++ {
		if i > total+1 {
			t.Fatalf("decoded %d frames from %d bytes", i, total)
		}
		h, err := r.ReadHeader()
		ev = append(ev, fzEvent{Op: "header", Header: h, Err: fzErrClass(err)})
		if err != nil {
			if h != (protocol.Header{}) {
				t.Fatalf("ReadHeader returned %+v with error %v", h, err)
			}
			if _, ok := map[string]bool{"EOF": true, "UnexpectedEOF": true, "Malformed": true}[fzErrClass(err)]; !ok {
				t.Fatalf("ReadHeader: unexpected error %v", err)
			}
			return ev
		}
		// Header invariants.
		if h.Length < 0 {
			t.Fatalf("negative length in %+v", h)
		}
		if h.Name == "" || len(h.Name) > 32 {
			t.Fatalf("bad name in %+v", h)
		}
		for j := 0; j < len(h.Name); j++ {
			if !fzTypeByte(h.Name[j]) {
				t.Fatalf("byte %#x in type name of %+v", h.Name[j], h)
			}
		}
		if h.Type != protocol.LookupType([]byte(h.Name)) {
			t.Fatalf("Type %v does not match Name %q", h.Type, h.Name)
		}
		if h.Type != protocol.Unknown && h.Name != h.Type.String() {
			t.Fatalf("Name %q for type %v", h.Name, h.Type)
		}
		if r.Remaining() != h.Length {
			t.Fatalf("Remaining() = %d after header %+v", r.Remaining(), h)
		}

		switch (int(mode) + i) % 4 {
		case 0, 1: // whole payload if small, else like case 2
			if h.Length <= 1<<16 {
				p, err := r.ReadPayload(nil)
				ev = append(ev, fzEvent{Op: "payload", Data: string(p), Err: fzErrClass(err)})
				if err == nil && (int64(len(p)) != h.Length || r.Remaining() != 0) {
					t.Fatalf("ReadPayload gave %d bytes of %d, Remaining %d", len(p), h.Length, r.Remaining())
				}
				if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("ReadPayload: unexpected error %v", err)
				}
				if r.Remaining() < 0 || r.Remaining() > h.Length {
					t.Fatalf("Remaining() = %d out of [0, %d]", r.Remaining(), h.Length)
				}
				continue
			}
			fallthrough
		case 2: // fields, then let ReadHeader skip the rest
			max := 1 + int(mode>>2)%40
			prev := r.Remaining()
			for k := 0; k < 4; k++ {
				f, err := r.ReadField(max)
				e := fzEvent{Op: "field", Err: fzErrClass(err)}
				if err == nil {
					e.Data = string(f)
				}
				ev = append(ev, e)
				rem := r.Remaining()
				if rem < 0 || rem > prev {
					t.Fatalf("Remaining() went from %d to %d", prev, rem)
				}
				if err != nil {
					if e.Err != "Malformed" && e.Err != "TooLong" && e.Err != "UnexpectedEOF" {
						t.Fatalf("ReadField: unexpected error %v", err)
					}
					break
				}
				if len(f) > max || bytes.IndexByte(f, ' ') >= 0 {
					t.Fatalf("ReadField(%d) = %q", max, f)
				}
				if rem != prev-int64(len(f))-1 {
					t.Fatalf("ReadField(%d) = %q took Remaining from %d to %d", max, f, prev, rem)
				}
				prev = rem
			}
		case 3: // explicit Discard
			err := r.Discard()
			ev = append(ev, fzEvent{Op: "discard", Err: fzErrClass(err)})
			if err == nil && r.Remaining() != 0 {
				t.Fatalf("Remaining() = %d after Discard", r.Remaining())
			}
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Discard: unexpected error %v", err)
			}
		}
	}
}

// FuzzReader decodes data fed in two parts split at split, one part a byte
// at a time, and compares with a decode of data in one piece.
func FuzzReader(f *testing.F) {
	f.Add([]byte("join 5 alice"), 3, uint8(0))
	f.Add([]byte("request_users_list 0 join 5 alice"), 20, uint8(1))
	f.Add([]byte("send_message 14 2 bob carol hi"), 7, uint8(2))
	f.Add([]byte("send_file 17 1 bob a.txt \x00\xff \n\r"), 12, uint8(3))
	f.Add([]byte("join 01 a"), 5, uint8(0))
	f.Add([]byte("x 999999999999999999 abc"), 4, uint8(3))
	f.Add([]byte("join 99999999999999999999999999 abc"), 9, uint8(1)) // past 64 bits: saturates
	f.Fuzz(func(t *testing.T, data []byte, split int, mode uint8) {
		if split < 0 {
			split = -(split + 1)
		}
		split %= len(data) + 1
		size := 16
		if mode&0x80 != 0 {
			size = 4096
		}
		whole := fzDecode(t, bytes.NewReader(data), size, mode, len(data))

		var a, b io.Reader = bytes.NewReader(data[:split]), bytes.NewReader(data[split:])
		if mode&0x40 != 0 {
			a = iotest.OneByteReader(a)
		} else {
			b = iotest.OneByteReader(b)
		}
		parts := fzDecode(t, io.MultiReader(a, b), size, mode, len(data))
		if diff := cmp.Diff(whole, parts); diff != "" {
			t.Fatalf("split at %d decodes differently (-whole +split):\n%s", split, diff)
		}
		// A different buffer size changes nothing either.
		other := fzDecode(t, iotest.HalfReader(bytes.NewReader(data)), 16+4096-size, mode, len(data))
		if diff := cmp.Diff(whole, other); diff != "" {
			t.Fatalf("buffer size decodes differently (-whole +other):\n%s", diff)
		}
	})
}

// FuzzPayload runs the payload parsers on arbitrary bytes; what they accept
// must re-encode to exactly the same payload.
func FuzzPayload(f *testing.F) {
	for _, s := range []string{
		"1 bob hi", "2 bob carol hi", "1 alice  hi  ", "0", "2 alice bob", "alice",
		"1 bob a.txt content", "0 hi", "01 a hi", "2 a hi", "1 . hi", "1 a\u200bb hi",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		names, text, err := protocol.ParseSend(data)
		// A slice of earlier names changes nothing but where the result
		// lies.
		reused, rtext, rerr := protocol.ParseSendInto([]string{"bob", "1", "a\u200bb", "carol"}, data)
		if (err == nil) != (rerr == nil) || !slices.Equal(names, reused) || !bytes.Equal(text, rtext) {
			t.Fatalf("ParseSendInto(%q) = %q %q %v, ParseSend %q %q %v", data, reused, rtext, rerr, names, text, err)
		}
		if err == nil {
			if len(names) < 1 || len(names) > protocol.MaxRecipients {
				t.Fatalf("ParseSend(%q) accepted %d names", data, len(names))
			}
			for _, n := range names {
				if protocol.ValidUsername(n) != nil {
					t.Fatalf("ParseSend(%q) accepted name %q", data, n)
				}
			}
			if protocol.ValidText(text) != nil {
				t.Fatalf("ParseSend(%q) accepted text %q", data, text)
			}
			frame := protocol.AppendMessage(nil, protocol.SendMessage, names, text)
			if want := append(protocol.AppendHeader(nil, protocol.SendMessage, int64(len(data))), data...); !bytes.Equal(frame, want) {
				t.Fatalf("ParseSend(%q) re-encodes to %q", data, frame)
			}
			h, p := ptDecodeOne(t, frame)
			if h.Type != protocol.SendMessage || !bytes.Equal(p, data) {
				t.Fatalf("re-encoded frame %q decodes to %+v %q", frame, h, p)
			}
		}

		sender, ftext, ferr := protocol.ParseForward(data)
		if ferr == nil {
			frame := protocol.AppendMessage(nil, protocol.ForwardMessage, []string{sender}, ftext)
			if want := append(protocol.AppendHeader(nil, protocol.ForwardMessage, int64(len(data))), data...); !bytes.Equal(frame, want) {
				t.Fatalf("ParseForward(%q) re-encodes to %q", data, frame)
			}
			if err != nil || len(names) != 1 || names[0] != sender || !bytes.Equal(text, ftext) {
				t.Fatalf("ParseForward(%q) accepts, ParseSend gives %q %q %v", data, names, text, err)
			}
		} else if err == nil && len(names) == 1 {
			t.Fatalf("ParseSend(%q) accepts one name, ParseForward refuses: %v", data, ferr)
		}

		if list, err := protocol.ParseUsersList(data); err == nil {
			for _, n := range list {
				if protocol.ValidUsername(n) != nil {
					t.Fatalf("ParseUsersList(%q) accepted name %q", data, n)
				}
			}
			frame := protocol.AppendUsersList(nil, list)
			if want := append(protocol.AppendHeader(nil, protocol.ResponseUsersList, int64(len(data))), data...); !bytes.Equal(frame, want) {
				t.Fatalf("ParseUsersList(%q) re-encodes to %q", data, frame)
			}
		}

		if name, err := protocol.ParseJoin(data); err == nil {
			if name != string(data) {
				t.Fatalf("ParseJoin(%q) = %q", data, name)
			}
			if !bytes.Equal(protocol.AppendJoin(nil, protocol.Join, name), append(protocol.AppendHeader(nil, protocol.Join, int64(len(data))), data...)) {
				t.Fatalf("ParseJoin(%q) does not re-encode", data)
			}
			if int64(len(data)) > (protocol.Limits{}).MaxPayload(protocol.ToServer, protocol.Join) {
				t.Fatalf("ParseJoin accepts %d bytes, more than the join limit", len(data))
			}
		}

		// The same bytes as a send_file payload.
		frame := append(protocol.AppendHeader(nil, protocol.SendFile, int64(len(data))), data...)
		r := protocol.NewReaderSize(iotest.OneByteReader(bytes.NewReader(frame)), 16)
		if _, err := r.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		fnames, fname, err := protocol.ReadFileHead(r, 1, protocol.MaxRecipients)
		if err == nil {
			if protocol.ValidFilename(fname) != nil {
				t.Fatalf("ReadFileHead(%q) accepted filename %q", data, fname)
			}
			content, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			re := protocol.AppendFileHead(nil, protocol.SendFile, fnames, fname, int64(len(content)))
			re = append(re, content...)
			if !bytes.Equal(re, frame) {
				t.Fatalf("ReadFileHead(%q) re-encodes to %q", data, re)
			}
		}
	})
}

// fzNameOK is an independent statement of the rules shared by usernames and
// filenames.
func fzNameOK(s string) bool {
	if s == "" || s == "." || s == ".." || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '/' || r == '\\' || unicode.Is(unicode.White_Space, r) || unicode.In(r, unicode.Cc, unicode.Cf) {
			return false
		}
	}
	return true
}

// FuzzValid checks ValidUsername and ValidFilename against the rule of
// PROTOCOL.md section 3, both ways.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"alice", ".", "..", "...", "a/b", "a b", "a\u00a0b", "a\u200bb", "\xff", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := fzNameOK(s)
		userOK := ok && utf8.RuneCountInString(s) <= 32
		fileOK := ok && len(s) <= 200
		uerr := protocol.ValidUsername(s)
		if (uerr == nil) != userOK {
			t.Fatalf("ValidUsername(%q) = %v, want ok=%v", s, uerr, userOK)
		}
		if uerr != nil && !errors.Is(uerr, protocol.ErrBadUsername) {
			t.Fatalf("ValidUsername(%q) = %v, not ErrBadUsername", s, uerr)
		}
		ferr := protocol.ValidFilename(s)
		if (ferr == nil) != fileOK {
			t.Fatalf("ValidFilename(%q) = %v, want ok=%v", s, ferr, fileOK)
		}
		if ferr != nil && !errors.Is(ferr, protocol.ErrBadFilename) {
			t.Fatalf("ValidFilename(%q) = %v, not ErrBadFilename", s, ferr)
		}
		// A valid username is also a valid join payload and within its limit.
		if uerr == nil {
			if len(s) > protocol.MaxUsernameBytes {
				t.Fatalf("valid username %q is %d bytes", s, len(s))
			}
			if name, err := protocol.ParseJoin([]byte(s)); err != nil || name != s {
				t.Fatalf("ParseJoin(%q) = %q, %v", s, name, err)
			}
		}
		// Explicitly, the forbidden pieces.
		if uerr == nil || ferr == nil {
			if s == "." || s == ".." || !utf8.ValidString(s) {
				t.Fatalf("accepted %q", s)
			}
			for _, r := range s {
				if r == '/' || r == '\\' || unicode.Is(unicode.White_Space, r) || unicode.In(r, unicode.Cc, unicode.Cf) {
					t.Fatalf("accepted %q with %U", s, r)
				}
			}
		}
	})
}
