package cluster

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decodeAll decodes every entry of b, or fails.
func decodeAll(b []byte) ([]batchEntry, error) {
	var out []batchEntry
	for len(b) > 0 {
		var e batchEntry
		var err error
		if e, b, err = nextEntry(b); err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

func encodeAll(es []batchEntry) []byte {
	var b []byte
	for _, e := range es {
		if e.seq != 0 {
			b = appendSeqEntry(b, creditKey{string(e.name), e.token}, e.seq, e.frame)
			continue
		}
		b = appendEntry(b, creditKey{string(e.name), e.token}, e.frame)
	}
	return b
}

func TestBatchEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries []batchEntry
	}{
		{"empty", nil},
		{"one", []batchEntry{{name: []byte("bob"), token: 7, frame: []byte("send_message 2\nhi")}}},
		{"empty frame", []batchEntry{{name: []byte("a"), token: 1, frame: []byte{}}}},
		{"several", []batchEntry{
			{name: []byte("alice"), token: 1<<64 - 1, frame: bytes.Repeat([]byte{0}, 300)},
			{name: []byte(""), token: 0, frame: []byte{1, 2, 3}},
			{name: bytes.Repeat([]byte("n"), 255), token: 42, frame: []byte("x")},
		}},
		{"with origin sequences", []batchEntry{
			{name: []byte("bob"), token: 7, seq: 1, frame: []byte("forward_message 8\n1 a hi")},
			{name: []byte("carol"), token: 8, frame: []byte("x")},
			{name: []byte("bob"), token: 7, seq: 1<<64 - 1, frame: []byte{}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeAll(tt.entries)
			n, err := countEntries(b)
			if err != nil || n != len(tt.entries) {
				t.Fatalf("countEntries = %d, %v; want %d, nil", n, err, len(tt.entries))
			}
			got, err := decodeAll(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.entries, got, cmp.AllowUnexported(batchEntry{}), cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
				t.Errorf("decoded entries differ (-want +got):\n%s", diff)
			}
			// Every strict prefix that ends inside an entry is refused.
			for cut := 1; cut < len(b); cut++ {
				if _, err := countEntries(b[:cut]); err == nil {
					if _, err2 := decodeAll(b[:cut]); err2 != nil {
						t.Fatalf("prefix %d: counted but not decoded", cut)
					}
					continue
				}
				if _, err := decodeAll(b[:cut]); err == nil {
					t.Fatalf("prefix %d: decoded but not counted", cut)
				}
			}
			if len(b) > 0 {
				if _, err := countEntries(b[:len(b)-1]); err == nil {
					t.Errorf("batch without its last byte accepted")
				}
			}
		})
	}
}

// FuzzBatch feeds arbitrary bytes to the batch decoder: it never panics,
// and what it accepts encodes back to the same bytes.
func FuzzBatch(f *testing.F) {
	f.Add(encodeAll([]batchEntry{{name: []byte("bob"), token: 7, frame: []byte("hi")}}))
	f.Add(encodeAll([]batchEntry{{name: []byte("a"), token: 1}, {name: []byte("b"), token: 2, frame: []byte{0xff}}}))
	f.Add([]byte{3, 'b', 'o', 'b'})
	f.Add(encodeAll([]batchEntry{{name: []byte("bob"), token: 7, seq: 3, frame: []byte("hi")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := countEntries(b)
		es, err2 := decodeAll(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("countEntries err %v, decodeAll err %v", err, err2)
		}
		if err != nil {
			return
		}
		if n != len(es) {
			t.Fatalf("counted %d entries, decoded %d", n, len(es))
		}
		if got := encodeAll(es); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, want %x", got, b)
		}
	})
}
