package protocol_test

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/gochat/chat/internal/protocol"
)

// TestPooledReaderRelease decodes the same frames through a pooled Reader
// that hands its buffer back between frames, whatever the read sizes.
func TestPooledReaderRelease(t *testing.T) {
	var stream []byte
	var want []string
	for _, text := range []string{"a", "hello there", string(bytes.Repeat([]byte("x"), 5000)), "tail"} {
		stream = protocol.AppendMessage(stream, protocol.ForwardMessage, []string{"bob"}, []byte(text))
		want = append(want, "1 bob "+text)
	}
	stream = append(stream, protocol.AppendFileHead(nil, protocol.ForwardFile, []string{"bob"}, "f", 9000)...)
	stream = append(stream, bytes.Repeat([]byte{7}, 9000)...)
	for name, src := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(stream) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
	} {
		t.Run(name, func(t *testing.T) {
			r := protocol.NewPooledReader(src(), 4096)
			for _, w := range want {
				r.Release()
				if _, err := r.ReadHeader(); err != nil {
					t.Fatal(err)
				}
				p, err := r.ReadPayload(nil)
				if err != nil || string(p) != w {
					t.Fatalf("got %.20q (%v), want %.20q", p, err, w)
				}
			}
			r.Release()
			h, err := r.ReadHeader()
			if err != nil || h.Type != protocol.ForwardFile {
				t.Fatalf("file header: %v %v", h, err)
			}
			names, name, err := protocol.ReadFileHead(r, 1, 1)
			if err != nil || names[0] != "bob" || name != "f" {
				t.Fatalf("file head %v %q %v", names, name, err)
			}
			content, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(content, bytes.Repeat([]byte{7}, 9000)) {
				t.Fatalf("content: %d bytes, %v", len(content), err)
			}
			r.Release()
			if _, err := r.ReadHeader(); err != io.EOF {
				t.Fatalf("after the last frame: %v, want EOF", err)
			}
		})
	}
}
