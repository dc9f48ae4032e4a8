package terminal

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDecodeKey(t *testing.T) {
	for _, c := range []struct {
		in    string
		final bool
		kind  keyKind
		text  string
		n     int
	}{
		{"abc", false, keyText, "abc", 3},
		{"ab\rc", false, keyText, "ab", 2},
		{"日本\x1b[D", false, keyText, "日本", 6},
		{"\xe6\x97", false, 0, "", 0},         // half a character: wait
		{"a\xe6\x97", false, keyText, "a", 1}, // what is whole now
		{"\xe6\x97", true, keyText, "", 2},    // never completed: dropped
		{"a\xffb", false, keyText, "ab", 3},   // invalid UTF-8 dropped
		{"a\u0085b", false, keyText, "ab", 4}, // C1 control dropped
		{"a\u200db", false, keyText, "a\u200db", 5},
		{"\r", false, keyEnter, "", 1},
		{"\r\nx", false, keyEnter, "", 2},
		{"\n", false, keyEnter, "", 1},
		{"\x7f", false, keyBackspace, "", 1},
		{"\x08", false, keyBackspace, "", 1},
		{"\x01", false, keyHome, "", 1},
		{"\x03", false, keyInterrupt, "", 1},
		{"\x04", false, keyEOF, "", 1},
		{"\x12", false, keySearch, "", 1},
		{"\x1a", false, keyNone, "", 1},
		{"\x1b", false, 0, "", 0}, // Esc alone: wait
		{"\x1b", true, keyEsc, "", 1},
		{"\x1b\r", false, keyEsc, "", 1}, // a lone Esc, then Enter
		{"\x1b\x03", false, keyEsc, "", 1},
		{"\x1b\x1b[A", false, keyEsc, "", 1},
		{"\x1bx", false, keyEsc, "", 1}, // not an Alt key: x is typed
		{"\x1bb", false, keyWordLeft, "", 2},
		{"\x1bf", false, keyWordRight, "", 2},
		{"\x1bd", false, keyKillWordFwd, "", 2},
		{"\x1b\x7f", false, keyKillWordBack, "", 2},
		{"\x1b[", false, 0, "", 0},
		{"\x1b[", true, keyNone, "", 2},
		{"\x1b[1;5", false, 0, "", 0},
		{"\x1b[A", false, keyUp, "", 3},
		{"\x1b[B", false, keyDown, "", 3},
		{"\x1b[C", false, keyRight, "", 3},
		{"\x1b[D", false, keyLeft, "", 3},
		{"\x1b[H", false, keyHome, "", 3},
		{"\x1b[F", false, keyEnd, "", 3},
		{"\x1b[1;5C", false, keyWordRight, "", 6},
		{"\x1b[1;3D", false, keyWordLeft, "", 6},
		{"\x1b[1;2C", false, keyRight, "", 6}, // Shift: still a character
		{"\x1b[3~", false, keyDelete, "", 4},
		{"\x1b[1~", false, keyHome, "", 4},
		{"\x1b[4~", false, keyEnd, "", 4},
		{"\x1b[200~", false, keyNone, "", 6},
		{"\x1b[15~", false, keyNone, "", 5},
		{"\x1b[1\rx", false, keyNone, "", 3}, // broken: dropped up to the CR
		{"\x1bOA", false, keyUp, "", 3},
		{"\x1bOH", false, keyHome, "", 3},
		{"\x1bO", false, 0, "", 0},
		{"\x1bO", true, keyEsc, "", 1},
		{"\x1bOx", false, keyEsc, "", 1},
	} {
		k, n := decodeKey([]byte(c.in), c.final)
		if k.kind != c.kind || k.text != c.text || n != c.n {
			t.Errorf("decodeKey(%q, %v) = %v %q, %d; want %v %q, %d", c.in, c.final, k.kind, k.text, n, c.kind, c.text, c.n)
		}
	}
}

// FuzzDecodeKey checks that decoding always moves on when no more bytes
// come, never hands the editor a control character or invalid UTF-8 as
// text, and decodes the same keys whether bytes come at once or one by one.
func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"abc", "日本語\x1b[D\x7f", "\x1b", "\x1b[1;5C", "\x1bb\x1bf", "a\u200db\r\n", "\x1b[200~x\x1b[201~", "\xe6\x97"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		all := decodeAll(t, b)
		// Byte by byte, waiting for more only while the start of a key
		// may still be completed, as keyReader does before its timeout.
		var split []key
		k := &keyReader{}
		for i, c := range b {
			k.buf = append(k.buf, c)
			for {
				ky, ok := k.decode(i == len(b)-1)
				if !ok {
					break
				}
				split = append(split, ky)
			}
		}
		if !sameKeys(all, split) {
			t.Fatalf("%q: at once %v, byte by byte %v", b, all, split)
		}
	})
}

// decodeAll decodes b whole, as when no more bytes are coming.
func decodeAll(t *testing.T, b []byte) []key {
	var keys []key
	k := &keyReader{buf: b}
	for len(k.buf) > 0 {
		before := len(k.buf)
		ky, ok := k.decode(true)
		if !ok && len(k.buf) > 0 || len(k.buf) >= before {
			t.Fatalf("decode(%q, true) took nothing", k.buf)
		}
		if !ok {
			break // a last LF after a CR
		}
		if ky.kind == keyText && (!utf8.ValidString(ky.text) || strings.ContainsFunc(ky.text, unicode.IsControl)) {
			t.Fatalf("decode(%q) text %q", b, ky.text)
		}
		keys = append(keys, ky)
	}
	return keys
}

// sameKeys compares key lists, text keys joined: text may come in one
// run or several.
func sameKeys(a, b []key) bool {
	join := func(ks []key) []key {
		var out []key
		for _, k := range ks {
			if k.kind == keyText && len(out) > 0 && out[len(out)-1].kind == keyText {
				out[len(out)-1].text += k.text
				continue
			}
			if k.kind == keyText && k.text == "" {
				continue
			}
			out = append(out, k)
		}
		return out
	}
	a, b = join(a), join(b)
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzEditor types the keys of b into the editor and draws the input row
// at a width drawn from b: the line stays valid text, the cursor on it, and
// the row narrower than the screen.
func FuzzEditor(f *testing.F) {
	for _, s := range []string{"msg 1 bob 日本語abc\x1b[D\x1b[D\x7f\x15", "a👩\u200d👩\u200d👧e\u0301\x7f\x14\x1bb\x1bf\x17", strings.Repeat("日本語abc", 30) + "\x01\x1b[C\x0b"} {
		f.Add([]byte(s), uint8(40))
	}
	f.Fuzz(func(t *testing.T, b []byte, w uint8) {
		width := int(w%120) + 1
		ed := newEditor(256)
		h := &history{}
		for _, l := range []string{"msg 1 bob 日本語", "list"} {
			h.Add(l)
		}
		var out bytes.Buffer
		s := newScreen(&out, &out, palette{}, func() int { return width }, ed)
		p := newPrompt("alice> ", "alice> ")
		s.beginInput(p)
		for _, k := range decodeAll(t, b) {
			switch k.kind {
			case keyText:
				ed.insert(k.text)
			case keyUp:
				ed.historyUp(h)
			case keyDown:
				ed.historyDown(h)
			default:
				ed.edit(k.kind)
			}
			if len(ed.buf) > ed.limit || !utf8.Valid(ed.buf) || bytes.ContainsFunc(ed.buf, unicode.IsControl) || ed.pos < 0 || ed.pos > len(ed.buf) {
				t.Fatalf("after %v: line %q, cursor %d", k, ed.buf, ed.pos)
			}
			out.Reset()
			s.redrawInput()
			row, _, ok := strings.Cut(strings.TrimPrefix(out.String(), "\r"), "\x1b[K")
			if !ok {
				t.Fatalf("no row drawn: %q", out.String())
			}
			widest := 0
			eachCluster(ed.buf, func(_, _, cw int) bool {
				widest = max(widest, cw)
				return true
			})
			// A row too narrow for one character and the marks cannot
			// hold it; any other must fit.
			if rw := textWidth(row); rw > width-1 && width-1-p.width >= max(minInput, widest+2) {
				t.Fatalf("width %d: row %q is %d columns", width, row, rw)
			}
		}
	})
}
