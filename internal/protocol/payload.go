package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Payload errors. Each wraps ErrMalformed, so errors.Is(err,
// ErrMalformed) tells every breach of PROTOCOL.md from a failing stream.
var (
	ErrBadUsername error = ruleError("invalid username")
	ErrBadFilename error = ruleError("invalid filename")
	ErrBadText     error = ruleError("invalid message text")
	ErrBadCount    error = ruleError("invalid count")
)

// forbiddenRune reports whether r may appear in neither a username nor a
// filename: Unicode White_Space, categories Cc and Cf, and path separators.
func forbiddenRune(r rune) bool {
	return r == '/' || r == '\\' || unicode.IsSpace(r) || unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r)
}

// asciiForbidden marks the ASCII bytes forbiddenRune rejects.
var asciiForbidden = func() (t [utf8.RuneSelf]bool) {
	for c := range rune(utf8.RuneSelf) {
		t[c] = forbiddenRune(c)
	}
	return t
}()

// validName checks the rules common to usernames and filenames and
// returns the number of code points, or -1 if s breaks them.
func validName(s string) int {
	if s == "" || s == "." || s == ".." {
		return -1
	}
	n := 0
	for i := 0; i < len(s); n++ {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiForbidden[c] {
				return -1
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || forbiddenRune(r) {
			return -1
		}
		i += size
	}
	return n
}

// ValidUsername returns an error wrapping ErrBadUsername if name breaks the
// username rule of PROTOCOL.md section 3.
func ValidUsername(name string) error {
	if n := validName(name); len(name) > MaxUsernameBytes || n < 0 || n > MaxUsernameRunes {
		return fmt.Errorf("%w: %q", ErrBadUsername, name)
	}
	return nil
}

// ValidFilename returns an error wrapping ErrBadFilename if name breaks the
// filename rule of PROTOCOL.md section 3.
func ValidFilename(name string) error {
	if len(name) > MaxFilenameBytes || validName(name) < 0 {
		return fmt.Errorf("%w: %q", ErrBadFilename, name)
	}
	return nil
}

// ValidText returns an error wrapping ErrBadText if text is not a valid
// message text: non-empty valid UTF-8 of at most MaxTextBytes bytes with no
// control character other than tab.
func ValidText(text []byte) error {
	if len(text) == 0 || len(text) > MaxTextBytes {
		return fmt.Errorf("%w: length %d", ErrBadText, len(text))
	}
	for i := 0; i < len(text); {
		// Skip eight plain printable ASCII bytes at a time.
		if i+8 <= len(text) && plainASCII8(binary.LittleEndian.Uint64(text[i:])) {
			i += 8
			continue
		}
		c := text[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return fmt.Errorf("%w: control byte %#x", ErrBadText, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%w: invalid UTF-8", ErrBadText)
		}
		if r <= 0x9f { // beyond ASCII, category Cc is exactly U+0080-U+009F
			return fmt.Errorf("%w: control character %U", ErrBadText, r)
		}
		i += size
	}
	return nil
}

// plainASCII8 reports whether the eight bytes of w are all printable
// ASCII (0x20 to 0x7e), without looking at each one.
func plainASCII8(w uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	below20 := (w - 0x20*lo) & ^w & hi                // some byte < 0x20
	del := ((w ^ 0x7f*lo) - lo) & ^(w ^ 0x7f*lo) & hi // some byte == 0x7f
	return (w&hi)|below20|del == 0
}

// ParseCount parses a decimal count without sign or leading zeros that
// lies in [lo, hi].
func ParseCount(field []byte, lo, hi int) (int, error) {
	if len(field) == 0 || len(field) > maxCountDigits || len(field) > 1 && field[0] == '0' {
		return 0, fmt.Errorf("%w: %q", ErrBadCount, field)
	}
	n := 0
	for _, c := range field {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrBadCount, field)
		}
		n = n*10 + int(c-'0')
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%w: %d not in [%d, %d]", ErrBadCount, n, lo, hi)
	}
	return n, nil
}

// ParseJoin decodes the payload of join (and disconnect): one username.
func ParseJoin(p []byte) (string, error) {
	name := string(p)
	if err := ValidUsername(name); err != nil {
		return "", err
	}
	return name, nil
}

// cutField splits p at its first space. ok is false if there is none.
func cutField(p []byte) (field, rest []byte, ok bool) {
	i := bytes.IndexByte(p, ' ')
	if i < 0 {
		return p, nil, false
	}
	return p[:i], p[i+1:], true
}

// parseList decodes `<N> <u1> ... <uN> ` from the front of p, with N in
// [lo, hi], and returns the names and the bytes after the space that
// follows the last name.
func parseList(p []byte, lo, hi int) ([]string, []byte, error) {
	return parseListInto(nil, p, lo, hi)
}

// parseListInto is parseList appending the names to dst[:0]. A name equal to
// the one dst's array held at its place is that string again, not a new
// one: a sender writes to the same users again and again.
func parseListInto(dst []string, p []byte, lo, hi int) ([]string, []byte, error) {
	field, rest, ok := cutField(p)
	if !ok {
		return nil, nil, fmt.Errorf("%w: no list", ErrMalformed)
	}
	n, err := ParseCount(field, lo, hi)
	if err != nil {
		return nil, nil, err
	}
	prev := dst[:cap(dst)]
	names := slices.Grow(dst[:0], n)
	for i := range n {
		field, rest, ok = cutField(rest)
		if !ok {
			return nil, nil, fmt.Errorf("%w: list ends early", ErrMalformed)
		}
		var name string
		if i < len(prev) && prev[i] == string(field) {
			name = prev[i] // valid already
		} else {
			name = string(field)
			if err := ValidUsername(name); err != nil {
				return nil, nil, err
			}
		}
		names = append(names, name)
	}
	return names, rest, nil
}

// ParseSend decodes the payload of send_message:
// `<N> <user1> ... <userN> <text>`.
func ParseSend(p []byte) (names []string, text []byte, err error) {
	return ParseSendInto(nil, p)
}

// ParseSendInto is ParseSend appending the names to dst[:0], so that a
// caller decoding one frame after another reuses one slice, and the
// strings of the names that repeat at the same places (BenchmarkRoute:
// two allocations of four per message).
func ParseSendInto(dst []string, p []byte) (names []string, text []byte, err error) {
	names, text, err = parseListInto(dst, p, 1, MaxRecipients)
	if err != nil {
		return nil, nil, err
	}
	if err := ValidText(text); err != nil {
		return nil, nil, err
	}
	return names, text, nil
}

// ParseForward decodes the payload of forward_message: `1 <sender> <text>`.
func ParseForward(p []byte) (sender string, text []byte, err error) {
	names, text, err := parseList(p, 1, 1)
	if err != nil {
		return "", nil, err
	}
	if err := ValidText(text); err != nil {
		return "", nil, err
	}
	return names[0], text, nil
}

// ParseUsersList decodes the payload of response_users_list:
// `<N> <user1> ... <userN>`.
func ParseUsersList(p []byte) ([]string, error) {
	field, rest, more := cutField(p)
	n, err := ParseCount(field, 0, 1<<30)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		if more {
			return nil, fmt.Errorf("%w: bytes after an empty list", ErrMalformed)
		}
		return []string{}, nil
	}
	if !more {
		return nil, fmt.Errorf("%w: list ends early", ErrMalformed)
	}
	names := make([]string, 0, min(n, 1<<16))
	for i := range n {
		field, rest, more = cutField(rest)
		if more == (i == n-1) {
			return nil, fmt.Errorf("%w: list has not %d names", ErrMalformed, n)
		}
		name := string(field)
		if err := ValidUsername(name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

// ReadFileHead reads the head of a send_file or forward_file payload from r:
// the recipient list, with N in [minN, maxN], then the filename. The file
// content is what remains of the payload (r.Remaining() bytes).
func ReadFileHead(r *Reader, minN, maxN int) (names []string, filename string, err error) {
	field, err := r.ReadField(maxCountDigits)
	if err != nil {
		return nil, "", err
	}
	n, err := ParseCount(field, minN, maxN)
	if err != nil {
		return nil, "", err
	}
	names = make([]string, 0, n)
	for range n {
		field, err := r.ReadField(MaxUsernameBytes)
		if err != nil {
			return nil, "", err
		}
		name := string(field)
		if err := ValidUsername(name); err != nil {
			return nil, "", err
		}
		names = append(names, name)
	}
	field, err = r.ReadField(MaxFilenameBytes)
	if err != nil {
		return nil, "", err
	}
	filename = string(field)
	if err := ValidFilename(filename); err != nil {
		return nil, "", err
	}
	return names, filename, nil
}

// appendList appends `<N> <u1> ... <uN>`.
func appendList(dst []byte, names []string) []byte {
	dst = strconv.AppendInt(dst, int64(len(names)), 10)
	for _, n := range names {
		dst = append(dst, ' ')
		dst = append(dst, n...)
	}
	return dst
}

// headerSize returns the bytes of the header of a frame of type t with a
// payload of n bytes.
func headerSize(t Type, n int) int { return int(HeaderSize(len(t.String()), int64(n))) }

func listLen(names []string) int {
	n := len(strconv.Itoa(len(names)))
	for _, name := range names {
		n += 1 + len(name)
	}
	return n
}

// AppendJoin appends a join (or, with t Disconnect, a disconnect) frame.
func AppendJoin(dst []byte, t Type, name string) []byte {
	dst = AppendHeader(dst, t, int64(len(name)))
	return append(dst, name...)
}

// AppendEmpty appends a frame of type t with an empty payload.
func AppendEmpty(dst []byte, t Type) []byte {
	return AppendHeader(dst, t, 0)
}

// AppendUsersList appends a response_users_list frame listing names in
// the order given.
func AppendUsersList(dst []byte, names []string) []byte {
	n := listLen(names)
	dst = slices.Grow(dst, headerSize(ResponseUsersList, n)+n)
	dst = AppendHeader(dst, ResponseUsersList, int64(n))
	return appendList(dst, names)
}

// AppendMessage appends a send_message (t SendMessage) or forward_message
// (t ForwardMessage, names holding just the sender) frame.
func AppendMessage(dst []byte, t Type, names []string, text []byte) []byte {
	n := listLen(names) + 1 + len(text)
	dst = slices.Grow(dst, headerSize(t, n)+n)
	dst = AppendHeader(dst, t, int64(n))
	dst = appendList(dst, names)
	dst = append(dst, ' ')
	return append(dst, text...)
}

// AppendFileHead appends the header and the payload head of a send_file
// (t SendFile) or forward_file (t ForwardFile) frame whose content, size
// bytes, the caller writes next.
func AppendFileHead(dst []byte, t Type, names []string, filename string, size int64) []byte {
	head := int64(listLen(names) + 1 + len(filename) + 1)
	dst = slices.Grow(dst, headerSize(t, int(head+size))+int(head))
	dst = AppendHeader(dst, t, head+size)
	dst = appendList(dst, names)
	dst = append(dst, ' ')
	dst = append(dst, filename...)
	return append(dst, ' ')
}
