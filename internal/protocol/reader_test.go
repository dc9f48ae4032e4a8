package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/gochat/chat/internal/protocol"
)

// rtFrame is one decoded frame, as compared by the reader tests.
type rtFrame struct {
	Type    protocol.Type
	Name    string
	Length  int64
	Payload string
}

// rtBothWays calls f with s served whole, then one byte per Read: a
// Reader must give the same answer however the bytes arrive.
func rtBothWays(s string, f func(src io.Reader, onebyte bool)) {
	for _, onebyte := range []bool{false, true} {
		var src io.Reader = strings.NewReader(s)
		if onebyte {
			src = iotest.OneByteReader(src)
		}
		f(src, onebyte)
	}
}

// rtWire builds a frame `<name> SP <len(payload)> SP <payload>` by hand,
// independently of AppendHeader.
func rtWire(name, payload string) string {
	return name + " " + strconv.Itoa(len(payload)) + " " + payload
}

// rtDecodeAll reads every frame of r with a Reader whose buffer has the given
// size (0 for the default), reading each payload whole. It returns the frames
// and the error that ended the stream.
func rtDecodeAll(t *testing.T, r io.Reader, size int) ([]rtFrame, error) {
	t.Helper()
	var fr *protocol.Reader
	if size == 0 {
		fr = protocol.NewReader(r)
	} else {
		fr = protocol.NewReaderSize(r, size)
	}
	var out []rtFrame
	for {
		h, err := fr.ReadHeader()
		if err != nil {
			return out, err
		}
		if fr.Remaining() != h.Length {
			t.Fatalf("Remaining() = %d after header of length %d", fr.Remaining(), h.Length)
		}
		p, err := fr.ReadPayload(nil)
		if err != nil {
			return out, err
		}
		if fr.Remaining() != 0 {
			t.Fatalf("Remaining() = %d after ReadPayload", fr.Remaining())
		}
		out = append(out, rtFrame{h.Type, h.Name, h.Length, string(p)})
	}
}

// rtValidFrames holds one well-formed frame of every message type, and one
// of an unknown type.
var rtValidFrames = []struct {
	wire string
	want rtFrame
}{
	{"join 5 alice", rtFrame{protocol.Join, "join", 5, "alice"}},
	{"request_users_list 0 ", rtFrame{protocol.RequestUsersList, "request_users_list", 0, ""}},
	{"response_users_list 11 2 alice bob", rtFrame{protocol.ResponseUsersList, "response_users_list", 11, "2 alice bob"}},
	{"response_users_list 1 0", rtFrame{protocol.ResponseUsersList, "response_users_list", 1, "0"}},
	{"send_message 14 2 bob carol hi", rtFrame{protocol.SendMessage, "send_message", 14, "2 bob carol hi"}},
	{"forward_message 10 1 alice hi", rtFrame{protocol.ForwardMessage, "forward_message", 10, "1 alice hi"}},
	{"send_file 17 1 bob a.txt \x00\xff \n\r", rtFrame{protocol.SendFile, "send_file", 17, "1 bob a.txt \x00\xff \n\r"}},
	{"forward_file 14 1 alice f.bin ", rtFrame{protocol.ForwardFile, "forward_file", 14, "1 alice f.bin "}},
	{"disconnect 5 alice", rtFrame{protocol.Disconnect, "disconnect", 5, "alice"}},
	{"err_unknown_message 0 ", rtFrame{protocol.ErrUnknownMessage, "err_unknown_message", 0, ""}},
	{"err_server_full 0 ", rtFrame{protocol.ErrServerFull, "err_server_full", 0, ""}},
	{"err_username_unavailable 0 ", rtFrame{protocol.ErrUsernameUnavailable, "err_username_unavailable", 0, ""}},
	{"hello_2 3 a b", rtFrame{protocol.Unknown, "hello_2", 3, "a b"}},
	{"unknown 0 ", rtFrame{protocol.Unknown, "unknown", 0, ""}},
	// A payload that looks like a header must not be taken for one.
	{"send_message 12 join 5 alice", rtFrame{protocol.SendMessage, "send_message", 12, "join 5 alice"}},
}

func rtValidStream() (string, []rtFrame) {
	var sb strings.Builder
	var want []rtFrame
	for _, f := range rtValidFrames {
		sb.WriteString(f.wire)
		want = append(want, f.want)
	}
	return sb.String(), want
}

func TestReaderValidFrames(t *testing.T) {
	for _, tc := range rtValidFrames {
		t.Run(tc.want.Name, func(t *testing.T) {
			if got := rtWire(tc.want.Name, tc.want.Payload); got != tc.wire {
				t.Fatalf("test table: wire %q, built %q", tc.wire, got)
			}
			got, err := rtDecodeAll(t, strings.NewReader(tc.wire), 0)
			if err != io.EOF {
				t.Errorf("end of stream: err = %v, want io.EOF", err)
			}
			if diff := cmp.Diff([]rtFrame{tc.want}, got); diff != "" {
				t.Errorf("decode %q (-want +got):\n%s", tc.wire, diff)
			}
		})
	}
}

// Every type name of section 3 decodes to its Type, and String gives it back.
func TestTypeNames(t *testing.T) {
	names := map[protocol.Type]string{
		protocol.Join:                   "join",
		protocol.RequestUsersList:       "request_users_list",
		protocol.ResponseUsersList:      "response_users_list",
		protocol.SendMessage:            "send_message",
		protocol.ForwardMessage:         "forward_message",
		protocol.SendFile:               "send_file",
		protocol.ForwardFile:            "forward_file",
		protocol.Disconnect:             "disconnect",
		protocol.ErrUnknownMessage:      "err_unknown_message",
		protocol.ErrServerFull:          "err_server_full",
		protocol.ErrUsernameUnavailable: "err_username_unavailable",
	}
	for typ, name := range names {
		if got := typ.String(); got != name {
			t.Errorf("%d.String() = %q, want %q", typ, got, name)
		}
		if got := protocol.LookupType([]byte(name)); got != typ {
			t.Errorf("LookupType(%q) = %v, want %v", name, got, typ)
		}
		wantEmpty := strings.HasPrefix(name, "err_") || name == "request_users_list"
		if got := typ.Empty(); got != wantEmpty {
			t.Errorf("%v.Empty() = %v, want %v", typ, got, wantEmpty)
		}
	}
	for _, name := range []string{"", "unknown", "JOIN", "Join", "join ", "joi", "joinx", "invalid"} {
		if got := protocol.LookupType([]byte(name)); got != protocol.Unknown {
			t.Errorf("LookupType(%q) = %v, want Unknown", name, got)
		}
	}
	if got := protocol.Type(200).String(); got != "invalid" {
		t.Errorf("Type(200).String() = %q, want %q", got, "invalid")
	}
}

// A stream decodes to the same frames however it is cut into reads.
func TestReaderIncremental(t *testing.T) {
	stream, want := rtValidStream()
	readers := map[string]func() io.Reader{
		"whole":     func() io.Reader { return strings.NewReader(stream) },
		"onebyte":   func() io.Reader { return iotest.OneByteReader(strings.NewReader(stream)) },
		"half":      func() io.Reader { return iotest.HalfReader(strings.NewReader(stream)) },
		"dataerr":   func() io.Reader { return iotest.DataErrReader(strings.NewReader(stream)) },
		"onebyte+e": func() io.Reader { return iotest.DataErrReader(iotest.OneByteReader(strings.NewReader(stream))) },
	}
	for name, mk := range readers {
		for _, size := range []int{0, 16, 17, 64} {
			t.Run(name+"/"+strconv.Itoa(size), func(t *testing.T) {
				got, err := rtDecodeAll(t, mk(), size)
				if err != io.EOF {
					t.Errorf("end of stream: err = %v, want io.EOF", err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// Splitting the stream into two reads at every possible point changes nothing.
func TestReaderEverySplit(t *testing.T) {
	stream, want := rtValidStream()
	for i := 0; i <= len(stream); i++ {
		r := io.MultiReader(strings.NewReader(stream[:i]), strings.NewReader(stream[i:]))
		got, err := rtDecodeAll(t, r, 16)
		if err != io.EOF {
			t.Errorf("split at %d: end err = %v, want io.EOF", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("split at %d (-want +got):\n%s", i, diff)
		}
	}
}

// Many frames in one read: all decoded, in order.
func TestReaderManyFramesOneRead(t *testing.T) {
	var buf []byte
	var want []rtFrame
	for i := range 2000 {
		name := "u" + strconv.Itoa(i)
		buf = append(buf, rtWire("join", name)...)
		want = append(want, rtFrame{protocol.Join, "join", int64(len(name)), name})
		if i%7 == 0 {
			buf = append(buf, "request_users_list 0 "...)
			want = append(want, rtFrame{protocol.RequestUsersList, "request_users_list", 0, ""})
		}
	}
	got, err := rtDecodeAll(t, bytes.NewReader(buf), 0)
	if err != io.EOF {
		t.Errorf("end of stream: err = %v, want io.EOF", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// With everything in one read, the frames after the first are buffered.
	r := protocol.NewReader(bytes.NewReader([]byte("join 1 ajoin 1 b")))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != len("ajoin 1 b") {
		t.Errorf("Buffered() = %d, want %d", got, len("ajoin 1 b"))
	}
}

func TestReaderEOF(t *testing.T) {
	tests := []struct {
		in      string
		nframes int   // frames decoded before the error
		wantErr error // io.EOF exactly, or something wrapping io.ErrUnexpectedEOF
	}{
		{"", 0, io.EOF},
		{"join 5 alice", 1, io.EOF},
		{"request_users_list 0 ", 1, io.EOF},
		{"join 5 alicerequest_users_list 0 ", 2, io.EOF},
		// Inside a header.
		{"j", 0, io.ErrUnexpectedEOF},
		{"join", 0, io.ErrUnexpectedEOF},
		{"join ", 0, io.ErrUnexpectedEOF},
		{"join 5", 0, io.ErrUnexpectedEOF},
		{"join 12", 0, io.ErrUnexpectedEOF},
		{"request_users_list 0", 0, io.ErrUnexpectedEOF},
		{"join 5 alicej", 1, io.ErrUnexpectedEOF},
		{"join 5 alicejoin 5", 1, io.ErrUnexpectedEOF},
		// Inside a payload.
		{"join 5 ", 0, io.ErrUnexpectedEOF},
		{"join 5 ali", 0, io.ErrUnexpectedEOF},
		{"request_users_list 0 join 5 alic", 1, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		rtBothWays(tc.in, func(src io.Reader, onebyte bool) {
			got, err := rtDecodeAll(t, src, 16)
			if len(got) != tc.nframes {
				t.Errorf("%q (onebyte %v): decoded %d frames, want %d", tc.in, onebyte, len(got), tc.nframes)
			}
			if tc.wantErr == io.EOF {
				if err != io.EOF {
					t.Errorf("%q (onebyte %v): err = %v, want io.EOF itself", tc.in, onebyte, err)
				}
			} else if !errors.Is(err, tc.wantErr) || errors.Is(err, protocol.ErrMalformed) {
				t.Errorf("%q (onebyte %v): err = %v, want %v", tc.in, onebyte, err, tc.wantErr)
			}
		})
	}
}

// A payload left unread and cut short makes the next ReadHeader fail with
// io.ErrUnexpectedEOF, not io.EOF.
func TestReaderEOFInUnreadPayload(t *testing.T) {
	r := protocol.NewReader(strings.NewReader("join 5 al"))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadHeader(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadHeader after truncated payload: err = %v, want io.ErrUnexpectedEOF", err)
	}

	r = protocol.NewReader(strings.NewReader("join 5 al"))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if err := r.Discard(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Discard of truncated payload: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReaderMalformedHeader(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty type", " 5 alice"},
		{"empty type, zero length", " 0 "},
		{"uppercase type", "Join 5 alice"},
		{"all uppercase type", "JOIN 5 alice"},
		{"hyphen in type", "send-message 3 1 a"},
		{"dot in type", "join. 0 "},
		{"tab after type", "join\t5 alice"},
		{"newline in type", "join\n5 alice"},
		{"CR in type", "\r\njoin 5 alice"},
		{"NUL in type", "\x00join 5 alice"},
		{"non-ASCII in type", "jöin 5 alice"},
		{"high byte in type", "join\xff 0 "},
		{"type of 33 bytes", strings.Repeat("a", 33) + " 0 "},
		{"type of 40 bytes", strings.Repeat("x", 40) + " 0 "},
		{"empty length", "join  alice"},
		{"empty length, payload empty", "request_users_list  "},
		{"leading zero", "join 01 a"},
		{"leading zero 05", "join 05 alice"},
		{"double zero", "request_users_list 00 "},
		{"negative", "join -1 "},
		{"plus sign", "join +5 alice"},
		{"hex", "join 0x5 alice"},
		{"non-digit", "join x "},
		{"digit then letter", "join 5a "},
		{"exponent", "join 1e3 "},
		{"tab after length", "join 5\talice"},
		{"newline after length", "join 5\nalice"},
		{"length of 65 digits", "join " + strings.Repeat("1", 65) + " "},
		{"missing space after type", "join5 alice"},
		{"missing space after length", "join 5alice"},
		{"non-ASCII digit", "join ٥ alice"},
		{"space before length", "join  5 alice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rtBothWays(tc.in, func(src io.Reader, onebyte bool) {
				h, err := protocol.NewReaderSize(src, 16).ReadHeader()
				if !errors.Is(err, protocol.ErrMalformed) {
					t.Errorf("ReadHeader(%q) (onebyte %v) = %+v, %v; want error wrapping ErrMalformed", tc.in, onebyte, h, err)
				}
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("ReadHeader(%q): err %v also reads as EOF", tc.in, err)
				}
			})
		})
	}
}

// Headers at the edges of the rules that are well-formed.
func TestReaderHeaderEdges(t *testing.T) {
	type32 := strings.Repeat("z", 32)
	tests := []struct {
		in   string
		want protocol.Header
	}{
		{"join 0 ", protocol.Header{Type: protocol.Join, Name: "join", Length: 0}},
		{"request_users_list 0 ", protocol.Header{Type: protocol.RequestUsersList, Name: "request_users_list", Length: 0}},
		{"a 0 ", protocol.Header{Type: protocol.Unknown, Name: "a", Length: 0}},
		{"_ 1 ", protocol.Header{Type: protocol.Unknown, Name: "_", Length: 1}},
		{"9 1 ", protocol.Header{Type: protocol.Unknown, Name: "9", Length: 1}},
		{type32 + " 7 ", protocol.Header{Type: protocol.Unknown, Name: type32, Length: 7}},
		{"join 10 ", protocol.Header{Type: protocol.Join, Name: "join", Length: 10}},
		{"join 100 ", protocol.Header{Type: protocol.Join, Name: "join", Length: 100}},
		{"join 9 ", protocol.Header{Type: protocol.Join, Name: "join", Length: 9}},
		{"send_file 999999999999999999 ", protocol.Header{Type: protocol.SendFile, Name: "send_file", Length: 999999999999999999}},
		{"send_file 100000000000000000 ", protocol.Header{Type: protocol.SendFile, Name: "send_file", Length: 100000000000000000}},
	}
	for _, tc := range tests {
		rtBothWays(tc.in, func(src io.Reader, onebyte bool) {
			r := protocol.NewReaderSize(src, 16)
			h, err := r.ReadHeader()
			if err != nil {
				t.Errorf("ReadHeader(%q): %v", tc.in, err)
				return
			}
			if diff := cmp.Diff(tc.want, h); diff != "" {
				t.Errorf("ReadHeader(%q) (-want +got):\n%s", tc.in, diff)
			}
			if r.Remaining() != tc.want.Length {
				t.Errorf("ReadHeader(%q): Remaining() = %d, want %d", tc.in, r.Remaining(), tc.want.Length)
			}
		})
	}
}

// Zero-length frames with their trailing space chain without any gap.
func TestReaderZeroLengthChain(t *testing.T) {
	in := "err_server_full 0 request_users_list 0 join 1 x"
	got, err := rtDecodeAll(t, iotest.OneByteReader(strings.NewReader(in)), 16)
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	want := []rtFrame{
		{protocol.ErrServerFull, "err_server_full", 0, ""},
		{protocol.RequestUsersList, "request_users_list", 0, ""},
		{protocol.Join, "join", 1, "x"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReaderReadField(t *testing.T) {
	type step struct {
		max     int
		want    string // the field, when wantErr is nil
		wantErr error
		remain  int64 // Remaining() after a successful step
	}
	long := strings.Repeat("w", 100)
	tests := []struct {
		name  string
		frame string
		steps []step
		next  string // type of the frame expected after this one, "" for io.EOF
	}{
		{
			name:  "list and text",
			frame: rtWire("send_message", "2 alice bob hello") + "join 1 x",
			steps: []step{
				{10, "2", nil, 15},
				{32, "alice", nil, 9},
				{32, "bob", nil, 5},
				{32, "", protocol.ErrMalformed, 0}, // "hello" has no space after it
			},
			next: "join",
		},
		{
			name:  "field exactly max",
			frame: rtWire("x", "abcd efgh "),
			steps: []step{{4, "abcd", nil, 5}, {4, "efgh", nil, 0}, {4, "", protocol.ErrMalformed, 0}},
		},
		{
			name:  "field one over max",
			frame: rtWire("x", "abcde "),
			steps: []step{{4, "", protocol.ErrTooLong, 0}},
		},
		{
			name:  "field over max without a space",
			frame: rtWire("x", "abcdefgh"),
			steps: []step{{4, "", protocol.ErrTooLong, 0}},
		},
		{
			name:  "field longer than the buffer",
			frame: rtWire("x", long+" "+long+"z "),
			steps: []step{{100, long, nil, 102}, {100, "", protocol.ErrTooLong, 0}},
		},
		{
			name:  "empty fields",
			frame: rtWire("x", "  a "),
			steps: []step{{5, "", nil, 3}, {5, "", nil, 2}, {5, "a", nil, 0}},
		},
		{
			name:  "empty payload",
			frame: "request_users_list 0 join 1 x",
			steps: []step{{10, "", protocol.ErrMalformed, 0}},
			next:  "join",
		},
		{
			// The field stops at the end of the payload: the space of the
			// next frame's header is not part of it.
			name:  "no reading past the payload",
			frame: "x 3 abcjoin 1 x",
			steps: []step{{100, "", protocol.ErrMalformed, 0}},
			next:  "join",
		},
		{
			name:  "stream ends inside the field",
			frame: "x 10 abc",
			steps: []step{{100, "", io.ErrUnexpectedEOF, 0}},
		},
		{
			name:  "binary bytes",
			frame: rtWire("x", "\x00\xff\n \t"),
			steps: []step{{10, "\x00\xff\n", nil, 1}},
		},
	}
	for _, tc := range tests {
		rtBothWays(tc.frame, func(src io.Reader, onebyte bool) {
			t.Run(tc.name+map[bool]string{false: "", true: "/onebyte"}[onebyte], func(t *testing.T) {
				r := protocol.NewReaderSize(src, 16)
				if _, err := r.ReadHeader(); err != nil {
					t.Fatal(err)
				}
				for i, s := range tc.steps {
					f, err := r.ReadField(s.max)
					if s.wantErr != nil {
						if !errors.Is(err, s.wantErr) {
							t.Fatalf("step %d: ReadField(%d) = %q, %v; want error %v", i, s.max, f, err, s.wantErr)
						}
						if s.wantErr == protocol.ErrTooLong && !errors.Is(err, protocol.ErrMalformed) {
							t.Errorf("step %d: %v does not wrap ErrMalformed", i, err)
						}
						break
					}
					if err != nil || string(f) != s.want {
						t.Fatalf("step %d: ReadField(%d) = %q, %v; want %q", i, s.max, f, err, s.want)
					}
					if r.Remaining() != s.remain {
						t.Errorf("step %d: Remaining() = %d, want %d", i, r.Remaining(), s.remain)
					}
				}
				h, err := r.ReadHeader()
				switch {
				case tc.next == "" && tc.steps[len(tc.steps)-1].wantErr == io.ErrUnexpectedEOF:
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("next ReadHeader: err = %v, want io.ErrUnexpectedEOF", err)
					}
				case tc.next == "":
					if err != io.EOF {
						t.Errorf("next ReadHeader = %+v, %v; want io.EOF", h, err)
					}
				default:
					if err != nil || h.Name != tc.next {
						t.Errorf("next ReadHeader = %+v, %v; want a %s frame", h, err, tc.next)
					}
				}
			})
		})
	}
}

// The returned field stays valid until the next call, even when the buffer
// moves under it.
func TestReaderReadFieldCopy(t *testing.T) {
	r := protocol.NewReaderSize(strings.NewReader(rtWire("x", "first second ")), 16)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	f, err := r.ReadField(20)
	if err != nil {
		t.Fatal(err)
	}
	first := string(f)
	if first != "first" {
		t.Fatalf("first field = %q", first)
	}
	f2, err := r.ReadField(20)
	if err != nil || string(f2) != "second" {
		t.Fatalf("second field = %q, %v", f2, err)
	}
}

func TestReaderDiscard(t *testing.T) {
	big := strings.Repeat("B", 1<<20)
	stream := rtWire("send_file", big) + rtWire("join", "alice") + rtWire("send_message", "1 bob hello") + "request_users_list 0 "
	rtBothWays(stream, func(src io.Reader, onebyte bool) {
		r := protocol.NewReaderSize(src, 16)

		// Unread payload: skipped by the next ReadHeader.
		h, err := r.ReadHeader()
		if err != nil || h.Type != protocol.SendFile || h.Length != 1<<20 {
			t.Fatalf("first header = %+v, %v", h, err)
		}
		h, err = r.ReadHeader()
		if err != nil || h.Type != protocol.Join || h.Length != 5 {
			t.Fatalf("header after an unread 1 MiB payload = %+v, %v", h, err)
		}

		// Partly read payload, then explicit Discard.
		var two [2]byte
		if n, err := io.ReadFull(r, two[:]); n != 2 || err != nil || string(two[:]) != "al" {
			t.Fatalf("Read = %d, %v, %q", n, err, two[:])
		}
		if err := r.Discard(); err != nil {
			t.Fatalf("Discard: %v", err)
		}
		if r.Remaining() != 0 {
			t.Errorf("Remaining() after Discard = %d", r.Remaining())
		}
		if err := r.Discard(); err != nil {
			t.Errorf("second Discard: %v", err)
		}
		if n, err := r.Read(two[:]); n != 0 || err != io.EOF {
			t.Errorf("Read after Discard = %d, %v; want 0, io.EOF", n, err)
		}

		// Partly read by ReadField, then the next header.
		h, err = r.ReadHeader()
		if err != nil || h.Type != protocol.SendMessage {
			t.Fatalf("third header = %+v, %v", h, err)
		}
		if f, err := r.ReadField(10); err != nil || string(f) != "1" {
			t.Fatalf("ReadField = %q, %v", f, err)
		}
		h, err = r.ReadHeader()
		if err != nil || h.Type != protocol.RequestUsersList || h.Length != 0 {
			t.Fatalf("fourth header = %+v, %v", h, err)
		}
		if _, err := r.ReadHeader(); err != io.EOF {
			t.Errorf("end: err = %v, want io.EOF", err)
		}
	})
}

func TestReaderReadPayload(t *testing.T) {
	big := strings.Repeat("0123456789", 10000)
	stream := rtWire("send_message", "1 bob hi") + "request_users_list 0 " + rtWire("send_file", big) + rtWire("join", "bob")
	r := protocol.NewReaderSize(iotest.HalfReader(strings.NewReader(stream)), 16)

	buf := make([]byte, 0, 64)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	p, err := r.ReadPayload(buf)
	if err != nil || string(p) != "1 bob hi" {
		t.Fatalf("ReadPayload = %q, %v", p, err)
	}
	if &p[0] != &buf[:1][0] {
		t.Errorf("ReadPayload did not reuse a buffer of sufficient capacity")
	}

	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	p, err = r.ReadPayload(buf)
	if err != nil || len(p) != 0 {
		t.Fatalf("empty ReadPayload = %q, %v", p, err)
	}

	// A payload larger than both buf and the Reader's buffer.
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	p, err = r.ReadPayload(buf)
	if err != nil || string(p) != big {
		t.Fatalf("big ReadPayload: len %d, err %v", len(p), err)
	}
	if r.Remaining() != 0 {
		t.Errorf("Remaining() = %d after ReadPayload", r.Remaining())
	}
	// The payload is fully read: another ReadPayload gives nothing, and the
	// next header is intact.
	p, err = r.ReadPayload(nil)
	if err != nil || len(p) != 0 {
		t.Errorf("ReadPayload at end = %q, %v", p, err)
	}
	h, err := r.ReadHeader()
	if err != nil || h.Type != protocol.Join {
		t.Fatalf("header after big payload = %+v, %v", h, err)
	}
	// The rest of a partly read payload.
	var one [1]byte
	if _, err := io.ReadFull(r, one[:]); err != nil || one[0] != 'b' {
		t.Fatalf("Read = %q, %v", one[:], err)
	}
	p, err = r.ReadPayload(nil)
	if err != nil || string(p) != "ob" {
		t.Errorf("ReadPayload of the rest = %q, %v; want %q", p, err, "ob")
	}
}

func TestReaderRead(t *testing.T) {
	r := protocol.NewReader(strings.NewReader("x 5 hellox 2 ab"))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := r.Read(buf)
	if n != 5 || string(buf[:n]) != "hello" || (err != nil && err != io.EOF) {
		t.Fatalf("Read = %d %q, %v; want 5 %q", n, buf[:n], err, "hello")
	}
	n, err = r.Read(buf)
	if n != 0 || err != io.EOF {
		t.Errorf("Read at end of payload = %d, %v; want 0, io.EOF", n, err)
	}
	all, err := io.ReadAll(r)
	if err != nil || len(all) != 0 {
		t.Errorf("ReadAll at end of payload = %q, %v", all, err)
	}
	h, err := r.ReadHeader()
	if err != nil || h.Length != 2 {
		t.Fatalf("second header = %+v, %v", h, err)
	}
	all, err = io.ReadAll(r)
	if err != nil || string(all) != "ab" {
		t.Errorf("ReadAll = %q, %v", all, err)
	}

	// A stream that ends inside the payload.
	r = protocol.NewReader(strings.NewReader("x 5 hel"))
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	all, err = io.ReadAll(r)
	if string(all) != "hel" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadAll of truncated payload = %q, %v; want %q, io.ErrUnexpectedEOF", all, err, "hel")
	}
}

func TestMaxPayload(t *testing.T) {
	const (
		list   = 4 + 1024*(1+128) // "1024" and 1024 names of 128 bytes
		sender = 2 + 128          // "1 " and a name of 128 bytes
		id     = 19               // digits of the largest transfer id
	)
	def := protocol.Limits{MaxFileSize: protocol.DefaultMaxFileSize}
	type maxCase struct {
		limits protocol.Limits
		dir    protocol.Direction
		typ    protocol.Type
		want   int64
	}
	tests := []maxCase{
		{def, protocol.ToServer, protocol.Join, 128},
		{def, protocol.ToServer, protocol.Disconnect, 128},
		{def, protocol.ToServer, protocol.RequestUsersList, 0},
		{def, protocol.ToServer, protocol.SendMessage, list + 1 + 65536},
		{def, protocol.ToServer, protocol.SendFile, list + 1 + 200 + 1 + 1<<30},
		{def, protocol.ToServer, protocol.ExtHello, 256},
		{protocol.Limits{MaxFileSize: 0}, protocol.ToServer, protocol.SendFile, list + 1 + 200 + 1},
		{protocol.Limits{MaxFileSize: 5}, protocol.ToServer, protocol.SendFile, list + 1 + 200 + 1 + 5},
		{protocol.Limits{MaxFileSize: 5}, protocol.ToServer, protocol.SendMessage, list + 1 + 65536},
		// The upload side of file-upload.
		{def, protocol.ToServer, protocol.FileBegin, id + 1 + list + 1 + 200 + 1 + id},
		{def, protocol.ToServer, protocol.FileChunk, id + 1 + 256<<10},
		{def, protocol.ToServer, protocol.FileEnd, id},
		{def, protocol.ToServer, protocol.FileAbort, id},

		{def, protocol.ToClient, protocol.ResponseUsersList, 10 + protocol.DefaultMaxListUsers*(1+128)},
		{protocol.Limits{MaxUsers: 10}, protocol.ToClient, protocol.ResponseUsersList, 10 + 10*(1+128)},
		{def, protocol.ToClient, protocol.ForwardMessage, sender + 1 + 65536},
		{def, protocol.ToClient, protocol.ForwardFile, sender + 1 + 200 + 1 + 1<<30},
		{protocol.Limits{MaxFileSize: 5}, protocol.ToClient, protocol.ForwardFile, sender + 1 + 200 + 1 + 5},
		{def, protocol.ToClient, protocol.ErrUnknownMessage, 0},
		{def, protocol.ToClient, protocol.ErrServerFull, 0},
		{def, protocol.ToClient, protocol.ErrUsernameUnavailable, 0},
		{def, protocol.ToClient, protocol.ExtHello, 256},
		{def, protocol.ToClient, protocol.FileBegin, id + 1 + 128 + 1 + 200 + 1 + id},
		{def, protocol.ToClient, protocol.FileChunk, id + 1 + 65536},
		{def, protocol.ToClient, protocol.FileEnd, id},
		{def, protocol.ToClient, protocol.FileAbort, id},
		{def, protocol.ToClient, protocol.FileReady, id + 1 + id + 1 + list},
		{def, protocol.ToClient, protocol.FileAck, id + 1 + id},
		{def, protocol.ToClient, protocol.FileResult, id + 1 + list},
		{def, protocol.ToClient, protocol.NotOnline, list},
		{def, protocol.ToClient, protocol.Presence, 8 + 1 + 128},
	}
	// What a client never sends, and what the server never sends: -1.
	never := []struct {
		dir   protocol.Direction
		types []protocol.Type
	}{
		{protocol.ToServer, []protocol.Type{protocol.Unknown, protocol.ResponseUsersList, protocol.ForwardMessage, protocol.ForwardFile,
			protocol.ErrUnknownMessage, protocol.ErrServerFull, protocol.ErrUsernameUnavailable,
			protocol.FileReady, protocol.FileAck, protocol.FileResult, protocol.NotOnline, protocol.Presence}},
		{protocol.ToClient, []protocol.Type{protocol.Unknown, protocol.Join, protocol.SendMessage, protocol.SendFile,
			protocol.Disconnect, protocol.RequestUsersList}},
	}
	for _, n := range never {
		for _, typ := range n.types {
			tests = append(tests, maxCase{def, n.dir, typ, -1})
		}
	}
	for _, tc := range tests {
		if got := tc.limits.MaxPayload(tc.dir, tc.typ); got != tc.want {
			t.Errorf("%+v.MaxPayload(%v, %v) = %d, want %d", tc.limits, tc.dir, tc.typ, got, tc.want)
		}
	}
	if protocol.DefaultMaxFileSize != 1<<30 {
		t.Errorf("DefaultMaxFileSize = %d, want 1 GiB", protocol.DefaultMaxFileSize)
	}
}

// The limits are tight: the largest valid payloads fit exactly.
func TestMaxPayloadTight(t *testing.T) {
	lim := protocol.Limits{MaxFileSize: 1000}
	name := strings.Repeat("😀", 32) // 128 bytes, 32 code points
	if got := lim.MaxPayload(protocol.ToServer, protocol.Join); int64(len(name)) != got {
		t.Errorf("longest username is %d bytes, join limit %d", len(name), got)
	}
	if _, err := protocol.ParseJoin([]byte(name)); err != nil {
		t.Fatalf("ParseJoin(longest name): %v", err)
	}

	names := make([]string, protocol.MaxRecipients)
	for i := range names {
		names[i] = name
	}
	text := bytes.Repeat([]byte("t"), 65536)
	frame := protocol.AppendMessage(nil, protocol.SendMessage, names, text)
	r := protocol.NewReader(bytes.NewReader(frame))
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	if h.Length != lim.MaxPayload(protocol.ToServer, protocol.SendMessage) {
		t.Errorf("largest send_message payload is %d bytes, limit %d", h.Length, lim.MaxPayload(protocol.ToServer, protocol.SendMessage))
	}
	p, err := r.ReadPayload(nil)
	if err != nil {
		t.Fatal(err)
	}
	if gotNames, gotText, err := protocol.ParseSend(p); err != nil || len(gotNames) != 1024 || len(gotText) != 65536 {
		t.Errorf("ParseSend(largest payload) = %d names, %d bytes, %v", len(gotNames), len(gotText), err)
	}

	fname := strings.Repeat("f", 200)
	head := protocol.AppendFileHead(nil, protocol.SendFile, names, fname, lim.MaxFileSize)
	r = protocol.NewReader(bytes.NewReader(head))
	h, err = r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	if h.Length != lim.MaxPayload(protocol.ToServer, protocol.SendFile) {
		t.Errorf("largest send_file payload is %d bytes, limit %d", h.Length, lim.MaxPayload(protocol.ToServer, protocol.SendFile))
	}

	// And the largest frames the server sends.
	tight := []struct {
		name  string
		frame []byte
	}{
		{"forward_message", protocol.AppendMessage(nil, protocol.ForwardMessage, []string{name}, text)},
		{"forward_file", protocol.AppendFileHead(nil, protocol.ForwardFile, []string{name}, fname, lim.MaxFileSize)},
		{"response_users_list", protocol.AppendUsersList(nil, names[:10])},
		{"file_begin", protocol.AppendFileBegin(nil, 1<<63, name, fname, 1<<62)},
		{"file_chunk", append(protocol.ChunkHeader(nil, 1<<63, protocol.MaxChunkData), make([]byte, protocol.MaxChunkData)...)},
		{"file_end", protocol.AppendFileID(nil, protocol.FileEnd, 1<<63)},
	}
	tlim := protocol.Limits{MaxFileSize: lim.MaxFileSize, MaxUsers: 10}
	for _, tc := range tight {
		h, err := protocol.NewReader(bytes.NewReader(tc.frame)).ReadHeader()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// A list's count may take up to 10 digits; the others are exact.
		want := tlim.MaxPayload(protocol.ToClient, h.Type)
		if h.Type == protocol.ResponseUsersList {
			want -= 10 - 2
		}
		if h.Length != want {
			t.Errorf("largest %s payload is %d bytes, limit %d", tc.name, h.Length, want)
		}
	}
}

func TestAppendHeaderAndFrame(t *testing.T) {
	tests := []struct{ got, want string }{
		{string(protocol.AppendHeader(nil, protocol.Join, 5)), "join 5 "},
		{string(protocol.AppendHeader(nil, protocol.RequestUsersList, 0)), "request_users_list 0 "},
		{string(protocol.AppendHeader([]byte("prefix|"), protocol.SendFile, 1<<30)), "prefix|send_file 1073741824 "},
		{string(protocol.AppendHeader(nil, protocol.SendFile, 999999999999999999)), "send_file 999999999999999999 "},
		{string(protocol.AppendFrame(nil, protocol.SendMessage, []byte("1 "), []byte("bob"), []byte(" hi"))), "send_message 8 1 bob hi"},
		{string(protocol.AppendFrame(nil, protocol.ErrServerFull)), "err_server_full 0 "},
		{string(protocol.AppendFrame([]byte("x"), protocol.Join, []byte("alice"))), "xjoin 5 alice"},
		{string(protocol.AppendFrame(nil, protocol.ForwardFile, nil, []byte{}, []byte("1 a f "))), "forward_file 6 1 a f "},
	}
	for i, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("case %d: got %q, want %q", i, tc.got, tc.want)
		}
	}
}

// TestLongLengthSaturates: a length of up to 64 digits too large for an
// int64 reads as math.MaxInt64, larger than any frame may be, so that each
// type's limit refuses it as too large (a join's with
// err_username_unavailable, as the contract says) instead of as
// malformed; a length that fits is exact.
func TestLongLengthSaturates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"join 999999999999999999 ", 999999999999999999},
		{"join 1000000000000000000 ", 1000000000000000000},
		{"join 9223372036854775807 ", math.MaxInt64},
		{"join 9223372036854775808 ", math.MaxInt64},
		{"send_message " + strings.Repeat("9", 64) + " ", math.MaxInt64},
	} {
		h, err := protocol.NewReader(strings.NewReader(tc.in)).ReadHeader()
		if err != nil || h.Length != tc.want {
			t.Errorf("ReadHeader(%q) = length %d, %v; want %d", tc.in, h.Length, err, tc.want)
		}
	}
}
