package protocol_test

import (
	"bytes"
	"io"
	"strconv"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// Codec benchmarks. None runs in a plain `go test`; run them with
// `go test -run '^$' -bench . ./internal/protocol`.

var text32 = bytes.Repeat([]byte{'x'}, 32)

func names(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = "user" + strconv.Itoa(i)
	}
	return s
}

// repeatReader yields buf over and over.
type repeatReader struct {
	buf []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	return n, nil
}

// frames returns k copies of frame back to back, so that a buffer of them
// ends on a frame boundary.
func frames(frame []byte, k int) []byte {
	return bytes.Repeat(frame, k)
}

func BenchmarkAppendSendMessage(b *testing.B) {
	for _, n := range []int{1, 16} {
		rcpts := names(n)
		b.Run("recipients="+strconv.Itoa(n), func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = protocol.AppendMessage(buf[:0], protocol.SendMessage, rcpts, text32)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkAppendForwardMessage(b *testing.B) {
	for _, size := range []int{32, 1024, 65536} {
		text := bytes.Repeat([]byte{'y'}, size)
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			sender := []string{"alice"}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				// As the server builds it: a fresh frame shared by the recipients.
				_ = protocol.AppendMessage(nil, protocol.ForwardMessage, sender, text)
			}
		})
	}
}

func BenchmarkReadHeader(b *testing.B) {
	frame := protocol.AppendMessage(nil, protocol.SendMessage, names(1), text32)
	r := protocol.NewReader(&repeatReader{buf: frames(frame, 1024)})
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := r.ReadHeader(); err != nil { // also skips the previous payload
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeSendMessage decodes send_message frames as the server
// does: header, payload, then the recipient list and text rules.
func BenchmarkDecodeSendMessage(b *testing.B) {
	for _, c := range []struct{ rcpts, size int }{{1, 32}, {16, 32}, {1, 1024}, {1, 65536}} {
		frame := protocol.AppendMessage(nil, protocol.SendMessage, names(c.rcpts), bytes.Repeat([]byte{'z'}, c.size))
		b.Run("recipients="+strconv.Itoa(c.rcpts)+"/size="+strconv.Itoa(c.size), func(b *testing.B) {
			r := protocol.NewReader(&repeatReader{buf: frames(frame, max(1, (256<<10)/len(frame)))})
			var buf []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				h, err := r.ReadHeader()
				if err != nil || h.Type != protocol.SendMessage {
					b.Fatal(h, err)
				}
				if buf, err = r.ReadPayload(buf); err != nil {
					b.Fatal(err)
				}
				if _, _, err := protocol.ParseSend(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseForward(b *testing.B) {
	p := protocol.AppendMessage(nil, protocol.ForwardMessage, []string{"alice"}, text32)
	_, after, _ := bytes.Cut(p, []byte(" "))
	_, payload, _ := bytes.Cut(after, []byte(" "))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := protocol.ParseForward(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidText(b *testing.B) {
	for _, c := range []struct {
		name string
		text []byte
	}{
		{"ascii-32", text32},
		{"ascii-64K", bytes.Repeat([]byte{'a'}, 65536)},
		{"utf8-64K", bytes.Repeat([]byte("é€😀 "), 65536/10)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			for b.Loop() {
				if err := protocol.ValidText(c.text); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidUsername(b *testing.B) {
	for b.Loop() {
		if err := protocol.ValidUsername("some_user-1234"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFileContent streams a file payload through the Reader in
// 64 KiB parts, as the server relays a large file.
func BenchmarkReadFileContent(b *testing.B) {
	const size = 4 << 20
	frame := protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob"}, "f.bin", size)
	frame = append(frame, make([]byte, size)...)
	r := protocol.NewReaderSize(&repeatReader{buf: frame}, 4<<10)
	part := make([]byte, 64<<10)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadHeader(); err != nil {
			b.Fatal(err)
		}
		if _, _, err := protocol.ReadFileHead(r, 1, 1); err != nil {
			b.Fatal(err)
		}
		for r.Remaining() > 0 {
			if _, err := io.ReadFull(r, part[:min(int64(len(part)), r.Remaining())]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
