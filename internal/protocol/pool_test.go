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

// decodeAll decodes every frame of r, releasing the buffer between frames
// if release is set, and renders what it saw.
func decodeAll(r *protocol.Reader, release bool) []string {
	var out []string
	for range 1000 {
		if release {
			r.Release()
		}
		h, err := r.ReadHeader()
		if err != nil {
			return append(out, "err "+err.Error())
		}
		if h.Length > 1<<16 {
			if err := r.Discard(); err != nil {
				return append(out, "err "+err.Error())
			}
			out = append(out, h.Name+" skipped")
			continue
		}
		p, err := r.ReadPayload(nil)
		if err != nil {
			return append(out, "err "+err.Error())
		}
		out = append(out, h.Name+" "+string(p))
	}
	return out
}

// FuzzPooledReader checks that a pooled Reader releasing its buffer
// between frames, fed in two parts split anywhere, decodes exactly what a
// plain Reader decodes from the whole input.
func FuzzPooledReader(f *testing.F) {
	f.Add([]byte("join 5 alicesend_message 8 1 bob hi"), 3)
	f.Add([]byte("request_users_list 0 forward_message 10 1 alice hi"), 20)
	f.Add([]byte("send_file 14 1 bob f.txt ab"), 0)
	f.Add([]byte("bogus 01 x"), 7)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if len(data) > 0 {
			split = (split%len(data) + len(data)) % len(data)
		} else {
			split = 0
		}
		want := decodeAll(protocol.NewReader(bytes.NewReader(data)), false)
		src := io.MultiReader(iotest.OneByteReader(bytes.NewReader(data[:split])), bytes.NewReader(data[split:]))
		got := decodeAll(protocol.NewPooledReader(src, 64), true)
		if len(got) != len(want) {
			t.Fatalf("pooled decode %q, plain %q", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("frame %d: pooled %q, plain %q", i, got[i], want[i])
			}
		}
	})
}
