package protocol

import (
	"encoding/binary"
	"testing"
)

func TestPlainASCII8(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			want := c >= 0x20 && c <= 0x7e
			if got := plainASCII8(binary.LittleEndian.Uint64(b)); got != want {
				t.Fatalf("byte %#x at %d: got %v, want %v", c, pos, got, want)
			}
		}
	}
}
