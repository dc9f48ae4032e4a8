package protocol

import (
	"encoding/binary"
	"testing"
	"unicode"
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

func TestCcBeyondASCII(t *testing.T) {
	// ValidText relies on Cc beyond ASCII being exactly U+0080-U+009F.
	for r := rune(0x80); r <= 0x10ffff; r++ {
		if isCc, inRange := unicode.Is(unicode.Cc, r), r <= 0x9f; isCc != inRange {
			t.Fatalf("%U: Cc %v, but the range check says %v", r, isCc, inRange)
		}
	}
}
