package terminal

import (
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// keyKind is what a key asks the line editor to do.
type keyKind uint8

// The keys the editor knows. The comments name what sends them.
const (
	keyNone         keyKind = iota // a key or sequence the editor ignores
	keyText                        // printable text (typed or pasted), in key.text
	keyEnter                       // Enter (CR, LF or CR LF)
	keyBackspace                   // Backspace, Ctrl-H
	keyDelete                      // Delete
	keyEOF                         // Ctrl-D: delete, or end the input on an empty line
	keyInterrupt                   // Ctrl-C
	keyLeft                        // Left, Ctrl-B
	keyRight                       // Right, Ctrl-F
	keyWordLeft                    // Alt-B, Ctrl-Left, Alt-Left
	keyWordRight                   // Alt-F, Ctrl-Right, Alt-Right
	keyHome                        // Home, Ctrl-A
	keyEnd                         // End, Ctrl-E
	keyUp                          // Up, Ctrl-P
	keyDown                        // Down, Ctrl-N
	keyKillWordBack                // Ctrl-W, Alt-Backspace
	keyKillWordFwd                 // Alt-D
	keyKillStart                   // Ctrl-U
	keyKillEnd                     // Ctrl-K
	keyTranspose                   // Ctrl-T
	keyClear                       // Ctrl-L
	keyTab                         // Tab
	keySearch                      // Ctrl-R
	keyCancel                      // Ctrl-G
	keyEsc                         // Esc on its own
)

// key is one key, as decoded from what the terminal sends.
type key struct {
	kind keyKind
	text string // for keyText
}

// ctrlKeys maps the control bytes to keys; the others are keyNone.
var ctrlKeys = [0x20]keyKind{
	0x01: keyHome, 0x02: keyLeft, 0x03: keyInterrupt, 0x04: keyEOF,
	0x05: keyEnd, 0x06: keyRight, 0x07: keyCancel, 0x08: keyBackspace,
	0x09: keyTab, 0x0a: keyEnter, 0x0b: keyKillEnd, 0x0c: keyClear,
	0x0d: keyEnter, 0x0e: keyDown, 0x10: keyUp, 0x12: keySearch,
	0x14: keyTranspose, 0x15: keyKillStart, 0x17: keyKillWordBack,
}

// decodeKey decodes the key at the start of b and returns it with the
// number of bytes it took. n is 0 when b holds only the start of a key
// (an Esc, part of an escape sequence or of a UTF-8 character) that more
// bytes may complete; with final set, no more are coming, and that start is
// taken as it is: a lone Esc is the Esc key, the rest of an incomplete
// sequence is dropped. Text runs as far as b has printable characters.
func decodeKey(b []byte, final bool) (k key, n int) {
	switch c := b[0]; {
	case c == 0x1b:
		return decodeEscape(b, final)
	case c == '\r' && len(b) > 1 && b[1] == '\n':
		return key{kind: keyEnter}, 2
	case c < 0x20:
		return key{kind: ctrlKeys[c]}, 1
	case c == 0x7f:
		return key{kind: keyBackspace}, 1
	}
	return decodeText(b, final)
}

// decodeText decodes a run of printable text. Invalid UTF-8 and C1
// control characters are dropped.
func decodeText(b []byte, final bool) (key, int) {
	var text strings.Builder
	i := 0
	for i < len(b) {
		c := b[i]
		if c < 0x20 || c == 0x7f {
			break
		}
		if c < utf8.RuneSelf {
			text.WriteByte(c)
			i++
			continue
		}
		if !utf8.FullRune(b[i:]) {
			if final {
				i = len(b) // the rest of the character never came
			}
			break
		}
		r, size := utf8.DecodeRune(b[i:])
		if (r != utf8.RuneError || size > 1) && !unicode.Is(unicode.Cc, r) {
			text.WriteRune(r)
		}
		i += size
	}
	if i == 0 {
		return key{}, 0
	}
	return key{kind: keyText, text: text.String()}, i
}

// decodeEscape decodes what starts with Esc: a CSI or SS3 sequence (arrows,
// Home, End, Delete, with modifiers), an Alt key (Alt-B, Alt-F, Alt-D,
// Alt-Backspace), or else a lone Esc, after which the next byte is a key
// of its own: an Esc never swallows a key.
func decodeEscape(b []byte, final bool) (key, int) {
	if len(b) == 1 {
		if final {
			return key{kind: keyEsc}, 1
		}
		return key{}, 0
	}
	switch b[1] {
	case '[':
		return decodeCSI(b, final)
	case 'O':
		if len(b) == 2 {
			if final {
				return key{kind: keyEsc}, 1
			}
			return key{}, 0
		}
		if c := b[2]; c >= 'A' && c <= 'Z' {
			return key{kind: cursorKey(c, false)}, 3
		}
	case 'b', 'B':
		return key{kind: keyWordLeft}, 2
	case 'f', 'F':
		return key{kind: keyWordRight}, 2
	case 'd', 'D':
		return key{kind: keyKillWordFwd}, 2
	case 0x7f, 0x08:
		return key{kind: keyKillWordBack}, 2
	}
	return key{kind: keyEsc}, 1
}

// decodeCSI decodes ESC [ parameters, intermediates and a final byte.
func decodeCSI(b []byte, final bool) (key, int) {
	i := 2
	for i < len(b) && b[i] >= 0x30 && b[i] <= 0x3f {
		i++
	}
	params := string(b[2:i])
	for i < len(b) && b[i] >= 0x20 && b[i] <= 0x2f {
		i++
	}
	if i == len(b) {
		if final {
			return key{}, i // incomplete for good: dropped
		}
		return key{}, 0
	}
	c := b[i]
	if c < 0x40 || c > 0x7e {
		return key{}, i // broken: dropped up to the byte that broke it
	}
	if c == '~' {
		switch params {
		case "1", "7":
			return key{kind: keyHome}, i + 1
		case "4", "8":
			return key{kind: keyEnd}, i + 1
		case "3":
			return key{kind: keyDelete}, i + 1
		}
		return key{}, i + 1 // function keys, paste brackets...
	}
	// xterm's modifier parameter: 1 + (1 shift, 2 alt, 4 ctrl, 8 meta).
	word := false
	if _, mod, ok := strings.Cut(params, ";"); ok && len(mod) == 1 && mod[0] > '1' && mod[0] <= '9' {
		word = (mod[0]-'1')&(2|4|8) != 0
	}
	return key{kind: cursorKey(c, word)}, i + 1
}

// cursorKey maps the final byte of an arrow, Home or End sequence to its
// key; word makes Left and Right move by words.
func cursorKey(c byte, word bool) keyKind {
	switch c {
	case 'A':
		return keyUp
	case 'B':
		return keyDown
	case 'C':
		if word {
			return keyWordRight
		}
		return keyRight
	case 'D':
		if word {
			return keyWordLeft
		}
		return keyLeft
	case 'H':
		return keyHome
	case 'F':
		return keyEnd
	}
	return keyNone
}

// escWait is how long the start of an escape sequence waits for the rest
// before it is taken as a lone Esc: a terminal sends a sequence at once,
// a person pressing Esc then another key is much slower.
const escWait = 50 * time.Millisecond

// keyReader turns the bytes read from the terminal into keys. It is used
// only by the goroutine calling Terminal.ReadLine.
type keyReader struct {
	src  <-chan []byte   // what pump reads from the terminal
	done <-chan struct{} // closed when the front end closes
	buf  []byte          // read but not yet decoded
	wait time.Duration   // escWait
	// afterCR is set when the last key was an Enter sent as CR.
	afterCR bool
}

// decode decodes the next key from buf (see decodeKey); ok is false when
// buf holds only the start of one and final is not set. An LF right after
// a CR is part of the same Enter, even when it comes in a later read.
func (k *keyReader) decode(final bool) (ky key, ok bool) {
	if k.afterCR && len(k.buf) > 0 {
		if k.buf[0] == '\n' {
			k.buf = k.buf[1:]
		}
		k.afterCR = false
	}
	if len(k.buf) == 0 {
		return key{}, false
	}
	ky, n := decodeKey(k.buf, final)
	if n == 0 {
		return key{}, false
	}
	k.afterCR = k.buf[n-1] == '\r'
	k.buf = k.buf[n:]
	return ky, true
}

// next returns the next key, waiting for one. err is io.EOF once the
// terminal's input ends or the front end is closed.
func (k *keyReader) next() (key, error) {
	for {
		if len(k.buf) > 0 {
			if ky, ok := k.decode(false); ok {
				return ky, nil
			}
			if len(k.buf) == 0 {
				continue // it was the LF of a CR LF
			}
			// The start of a key: give the rest a moment to come.
			timer := time.NewTimer(k.wait)
			select {
			case b, ok := <-k.src:
				timer.Stop()
				if ok {
					k.buf = append(k.buf, b...)
					continue
				}
			case <-timer.C:
			case <-k.done:
				timer.Stop()
				return key{}, io.EOF
			}
			ky, _ := k.decode(true)
			return ky, nil
		}
		select {
		case b, ok := <-k.src:
			if !ok {
				return key{}, io.EOF
			}
			k.buf = b
		case <-k.done:
			return key{}, io.EOF
		}
	}
}

// more reports whether keys are waiting to be handled, taking in without
// waiting what was typed meanwhile. The editor redraws only when none are,
// so a paste is drawn once, not once per character.
func (k *keyReader) more() bool {
	if len(k.buf) > 0 {
		return true
	}
	select {
	case b, ok := <-k.src:
		if ok {
			k.buf = b
			return len(b) > 0
		}
	default:
	}
	return false
}
