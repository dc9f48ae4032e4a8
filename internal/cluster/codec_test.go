package cluster

import (
	"bytes"
	"testing"
)

func TestFileOpenRoundTrip(t *testing.T) {
	for _, o := range []fileOpen{
		{},
		{id: 1, inc: 2, token: 3, size: 4, name: "bob", sender: "alice", filename: "a.txt", src: "n1"},
		{id: 1<<64 - 1, inc: 1 << 63, token: 9, size: 1 << 40, name: string(bytes.Repeat([]byte("b"), 32)), sender: "x", filename: string(bytes.Repeat([]byte("f"), 255)), src: "node:15000"},
	} {
		b := o.append(nil)
		got, ok := decodeFileOpen(b)
		if !ok || got != o {
			t.Errorf("decodeFileOpen(append(%+v)) = %+v, %v", o, got, ok)
		}
		if _, ok := decodeFileOpen(append(b, 0)); ok {
			t.Errorf("%+v: a trailing byte was accepted", o)
		}
		if _, ok := decodeFileOpen(b[:len(b)-1]); ok {
			t.Errorf("%+v: a message without its last byte was accepted", o)
		}
	}
}

// FuzzFileOpen feeds arbitrary bytes to the decoder of a transfer's
// announcement: it never panics, and what it accepts encodes back to the
// same bytes.
func FuzzFileOpen(f *testing.F) {
	f.Add(fileOpen{id: 1, inc: 2, token: 3, size: 4, name: "bob", sender: "alice", filename: "a.txt", src: "n1"}.append(nil))
	f.Add(make([]byte, 36))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, ok := decodeFileOpen(b)
		if !ok {
			return
		}
		if o.size < 0 {
			t.Fatalf("negative size %d accepted", o.size)
		}
		if got := o.append(nil); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, want %x", got, b)
		}
	})
}

// FuzzRegistryValues feeds arbitrary bytes to the parsers of the
// registry's values: they never panic, and a value they accept parses the
// same once written back.
func FuzzRegistryValues(f *testing.F) {
	f.Add(userEntry{inc: 1, token: 2, node: "n1"}.value())
	f.Add(userEntry{inc: 1, token: 2, node: "n1", resume: resumeInfo{hash: string(make([]byte, 32)), window: 30000}}.value())
	f.Add(userEntry{inc: 1, token: 2, node: "n1", resume: resumeInfo{hash: string(make([]byte, 32)), window: 30000, retain: 1 << 20}}.value())
	f.Add(slotEntry{inc: 0xabc, node: "127.0.0.1:15000"}.value())
	f.Add(leaseEntry{inc: 5, addr: "127.0.0.1:15001"}.value())
	f.Add([]byte("zz  "))
	f.Fuzz(func(t *testing.T, b []byte) {
		if u, err := parseUser(b); err == nil {
			again, err := parseUser(u.value())
			if err != nil || again != u {
				t.Fatalf("user %q: parsed %+v, written back and parsed %+v, %v", b, u, again, err)
			}
		}
		if s, err := parseSlot(b); err == nil {
			again, err := parseSlot(s.value())
			if err != nil || again != s {
				t.Fatalf("slot %q: parsed %+v, written back and parsed %+v, %v", b, s, again, err)
			}
		}
		if l, err := parseLease(b); err == nil {
			again, err := parseLease(l.value())
			if err != nil || again != l {
				t.Fatalf("lease %q: parsed %+v, written back and parsed %+v, %v", b, l, again, err)
			}
		}
	})
}
