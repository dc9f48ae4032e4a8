package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unicode"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// ptList renders `<N> <u1> ... <uN>` by hand.
func ptList(names []string) string {
	return strconv.Itoa(len(names)) + " " + strings.Join(names, " ")
}

// ptForEachRune calls f for every code point of the range table.
func ptForEachRune(tab *unicode.RangeTable, f func(rune)) {
	for _, r16 := range tab.R16 {
		for r := rune(r16.Lo); r <= rune(r16.Hi); r += rune(r16.Stride) {
			f(r)
		}
	}
	for _, r32 := range tab.R32 {
		for r := rune(r32.Lo); r <= rune(r32.Hi); r += rune(r32.Stride) {
			f(r)
		}
	}
}

// Names that break the rules common to usernames and filenames.
var ptBadNames = []struct{ name, in string }{
	{"empty", ""},
	{"dot", "."},
	{"dot dot", ".."},
	{"space", "a b"},
	{"leading space", " a"},
	{"trailing space", "a "},
	{"tab", "a\tb"},
	{"LF", "a\nb"},
	{"CR", "a\rb"},
	{"VT", "a\vb"},
	{"FF", "a\fb"},
	{"NEL U+0085", "a\u0085b"},
	{"NBSP U+00A0", "a\u00a0b"},
	{"ogham space U+1680", "a\u1680b"},
	{"en quad U+2000", "a\u2000b"},
	{"hair space U+200A", "a\u200ab"},
	{"line separator U+2028", "a\u2028b"},
	{"paragraph separator U+2029", "a\u2029b"},
	{"narrow NBSP U+202F", "a\u202fb"},
	{"math space U+205F", "a\u205fb"},
	{"ideographic space U+3000", "a\u3000b"},
	{"only U+3000", "\u3000"},
	{"NUL", "a\x00b"},
	{"SOH", "\x01"},
	{"ESC sequence", "a\x1b[31mb"},
	{"DEL", "a\x7f"},
	{"C1 U+0080", "a\u0080"},
	{"C1 U+009F", "\u009fa"},
	{"ZWSP U+200B", "a\u200bb"},
	{"ZWNJ U+200C", "a\u200cb"},
	{"ZWJ U+200D", "a\u200db"},
	{"LRM U+200E", "a\u200eb"},
	{"RLO U+202E", "a\u202eb"},
	{"LRI U+2066", "a\u2066b"},
	{"BOM U+FEFF", "\ufeffalice"},
	{"soft hyphen U+00AD", "a\u00adb"},
	{"Arabic number sign U+0600", "a\u0600"},
	{"language tag U+E0001", "a\U000E0001"},
	{"slash", "a/b"},
	{"only slash", "/"},
	{"dot slash", "./a"},
	{"dot dot slash", "../etc"},
	{"backslash", "a\\b"},
	{"only backslash", "\\"},
	{"dot dot backslash", "..\\a"},
	{"invalid byte 0xff", "a\xffb"},
	{"truncated sequence", "a\xc3"},
	{"lone continuation byte", "\x80"},
	{"encoded surrogate", "\xed\xa0\x80"},
	{"overlong slash", "\xc0\xaf"},
	{"overlong NUL", "\xc0\x80"},
	{"above U+10FFFF", "\xf4\x90\x80\x80"},
}

// Names that are valid both as usernames and as filenames.
var ptGoodNames = []string{
	"a", "alice", "Alice", "ALICE", "bob_42", "user-name", "a.b",
	"...", "....", ".a", "a.", ".hidden", "a..b", "..a", "a..",
	"~!@#$%^&*()+=[]{};:'\",<>?|`",
	"日本語", "ünïcödé", "e\u0301", "😀", "\ufffd", "\ue000", "Ⅻ", "-",
}

func TestValidUsername(t *testing.T) {
	good := append([]string{
		strings.Repeat("x", 32),
		strings.Repeat("é", 32), // 64 bytes
		strings.Repeat("語", 32), // 96 bytes
		strings.Repeat("😀", 32), // 128 bytes
		strings.Repeat("x", 31) + "😀",
	}, ptGoodNames...)
	bad := append([]struct{ name, in string }{
		{"33 ASCII", strings.Repeat("x", 33)},
		{"33 two-byte", strings.Repeat("é", 33)},
		{"33 four-byte", strings.Repeat("😀", 33)},
		{"32 then a combining mark", strings.Repeat("e", 32) + "\u0301"},
		{"100 ASCII", strings.Repeat("x", 100)},
	}, ptBadNames...)
	ptCheckValid(t, "ValidUsername", protocol.ValidUsername, protocol.ErrBadUsername, good, bad)
}

// ptCheckValid checks that valid (named what) accepts every string of good
// and refuses every one of bad with an error wrapping want.
func ptCheckValid(t *testing.T, what string, valid func(string) error, want error, good []string, bad []struct{ name, in string }) {
	t.Helper()
	for _, name := range good {
		if err := valid(name); err != nil {
			t.Errorf("%s(%q) = %v, want nil", what, name, err)
		}
	}
	for _, tc := range bad {
		if err := valid(tc.in); !errors.Is(err, want) {
			t.Errorf("%s(%q) [%s] = %v, want %v", what, tc.in, tc.name, err, want)
		}
	}
}

// Every White_Space, Cc and Cf code point is refused, wherever it stands.
func TestValidNamesRefuseEveryForbiddenRune(t *testing.T) {
	for _, tab := range []*unicode.RangeTable{unicode.White_Space, unicode.Cc, unicode.Cf} {
		ptForEachRune(tab, func(r rune) {
			for _, name := range []string{string(r), "a" + string(r), string(r) + "a", "a" + string(r) + "b"} {
				if protocol.ValidUsername(name) == nil {
					t.Errorf("ValidUsername(%q) accepts %U", name, r)
				}
				if protocol.ValidFilename(name) == nil {
					t.Errorf("ValidFilename(%q) accepts %U", name, r)
				}
			}
		})
	}
}

func TestValidFilename(t *testing.T) {
	good := append([]string{
		"a.txt", "file(1).tar.gz", "README", ".bashrc", "x.",
		strings.Repeat("x", 200),
		strings.Repeat("é", 100),                                 // 200 bytes
		strings.Repeat("x", 196) + "😀",                           // 200 bytes
		strings.Repeat("語", 66) + "xx",                           // 200 bytes
		strings.Repeat("😀", 33),                                  // more than 32 code points is fine
		strings.Repeat("x", 40) + "." + strings.Repeat("y", 100), // long, with extension
	}, ptGoodNames...)
	bad := append([]struct{ name, in string }{
		{"201 bytes", strings.Repeat("x", 201)},
		{"201 bytes multibyte", strings.Repeat("é", 100) + "x"},
		{"203 bytes, 4-byte rune at the end", strings.Repeat("x", 199) + "😀"},
		{"path", "dir/file.txt"},
		{"absolute path", "/etc/passwd"},
		{"windows path", "C:\\x.txt"},
		{"space", "my file.txt"},
	}, ptBadNames...)
	ptCheckValid(t, "ValidFilename", protocol.ValidFilename, protocol.ErrBadFilename, good, bad)
}

func TestValidText(t *testing.T) {
	good := []string{
		"hi", "a", " ", "\t", "a\tb", "  spaced   text  ", "\t\tleading tabs",
		"日本語 text", "a\u00a0b", "a\u3000b", "a\u2028b", "a\u200bb", "\ufeff", "a\u202eb",
		"\ufffd", "😀", "/\\ ..",
		strings.Repeat("x", 65536),
		strings.Repeat("é", 32768),       // 65536 bytes
		strings.Repeat("x", 65532) + "😀", // 65536 bytes
	}
	for _, s := range good {
		if err := protocol.ValidText([]byte(s)); err != nil {
			t.Errorf("ValidText(%.40q) = %v, want nil", s, err)
		}
	}
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"65537 bytes", strings.Repeat("x", 65537)},
		{"65537 bytes multibyte", strings.Repeat("x", 65535) + "é"},
		{"LF", "a\nb"},
		{"CR", "a\r"},
		{"CRLF", "hi\r\n"},
		{"NUL", "\x00"},
		{"SOH", "a\x01b"},
		{"ESC", "\x1b[2J"},
		{"US", "\x1f"},
		{"VT", "\v"},
		{"FF", "\f"},
		{"DEL", "a\x7f"},
		{"NEL U+0085", "a\u0085b"},
		{"C1 U+0080", "\u0080"},
		{"C1 U+009B (CSI)", "\u009b2J"},
		{"invalid byte", "a\xff"},
		{"truncated sequence", "ab\xe6\x97"},
		{"lone continuation", "\x80"},
		{"encoded surrogate", "\xed\xb0\x80"},
		{"overlong", "\xc1\xbf"},
		{"above U+10FFFF", "\xf5\x80\x80\x80"},
	}
	for _, tc := range bad {
		if err := protocol.ValidText([]byte(tc.in)); !errors.Is(err, protocol.ErrBadText) {
			t.Errorf("ValidText(%.40q) [%s] = %v, want ErrBadText", tc.in, tc.name, err)
		}
	}
	// Every Cc code point except tab is refused.
	ptForEachRune(unicode.Cc, func(r rune) {
		err := protocol.ValidText([]byte("a" + string(r) + "b"))
		if (r == '\t') != (err == nil) {
			t.Errorf("ValidText with %U = %v", r, err)
		}
	})
}

func TestParseCount(t *testing.T) {
	type countCase struct {
		in       string
		min, max int
		want     int
		ok       bool
	}
	tests := []countCase{
		{"0", 0, 10, 0, true},
		{"1", 1, 1024, 1, true},
		{"9", 1, 1024, 9, true},
		{"10", 1, 1024, 10, true},
		{"1024", 1, 1024, 1024, true},
		{"1025", 1, 1024, 0, false},
		{"0", 1, 1024, 0, false},
		{"5", 6, 10, 0, false},
		{"1073741824", 0, 1 << 30, 1 << 30, true},
		{"1073741825", 0, 1 << 30, 0, false},
		{"9999999999", 0, math.MaxInt, 9999999999, true},
		{"99999999999", 0, math.MaxInt, 0, false}, // 11 digits
		{"12345678901234567890", 0, math.MaxInt, 0, false},
		{"0001024", 0, 2000, 0, false},
		{"-1", -5, 1024, 0, false},
	}
	// Not counts at all: empty, leading zeros, signs, spaces, letters, a
	// point, digits other than ASCII's.
	for _, in := range []string{"01", "00", "007", "", "+1", " 1", "1 ", "1a", "a", "1.0", "0x1", "٣", "１" /* fullwidth digit one */} {
		tests = append(tests, countCase{in, 0, 1024, 0, false})
	}
	for _, tc := range tests {
		n, err := protocol.ParseCount([]byte(tc.in), tc.min, tc.max)
		if tc.ok {
			if err != nil || n != tc.want {
				t.Errorf("ParseCount(%q, %d, %d) = %d, %v; want %d", tc.in, tc.min, tc.max, n, err, tc.want)
			}
		} else if !errors.Is(err, protocol.ErrBadCount) {
			t.Errorf("ParseCount(%q, %d, %d) = %d, %v; want ErrBadCount", tc.in, tc.min, tc.max, n, err)
		}
	}
}

func TestParseJoin(t *testing.T) {
	for _, name := range []string{"alice", "x", strings.Repeat("😀", 32), "...", "日本"} {
		got, err := protocol.ParseJoin([]byte(name))
		if err != nil || got != name {
			t.Errorf("ParseJoin(%q) = %q, %v", name, got, err)
		}
	}
	for _, in := range []string{"", "alice ", " alice", "a b", "alice\n", strings.Repeat("x", 33), strings.Repeat("x", 129), ".", "..", "a/b", "\xff"} {
		if got, err := protocol.ParseJoin([]byte(in)); !errors.Is(err, protocol.ErrBadUsername) || got != "" {
			t.Errorf("ParseJoin(%q) = %q, %v; want ErrBadUsername", in, got, err)
		}
	}
}

// TestParseSendIntoReuses checks that a slice handed back to
// ParseSendInto is reused, names that repeat at their places are the
// strings already there (no allocation), and other names are checked as
// ParseSend checks them.
func TestParseSendIntoReuses(t *testing.T) {
	frame := []byte("2 bob carol hi")
	names, _, err := protocol.ParseSendInto(nil, frame)
	if err != nil {
		t.Fatal(err)
	}
	first := unsafe.StringData(names[1])
	allocs := testing.AllocsPerRun(100, func() {
		names, _, err = protocol.ParseSendInto(names, frame)
	})
	if err != nil || allocs != 0 {
		t.Fatalf("parsing the same frame again: %v, %v allocations, want none", err, allocs)
	}
	if unsafe.StringData(names[1]) != first {
		t.Errorf("carol was allocated again")
	}
	got, text, err := protocol.ParseSendInto(names, []byte("2 carol dave yo"))
	if err != nil || !slices.Equal(got, []string{"carol", "dave"}) || string(text) != "yo" {
		t.Errorf("names at other places: %q %q %v", got, text, err)
	}
	for _, in := range []string{"2 carol d/ve yo", "2 carol\x00 dave yo", "1 a\u200bb yo"} {
		if _, _, err := protocol.ParseSendInto(got, []byte(in)); !errors.Is(err, protocol.ErrBadUsername) {
			t.Errorf("ParseSendInto(%q) after valid names = %v, want ErrBadUsername", in, err)
		}
	}
}

func TestParseSend(t *testing.T) {
	longName := strings.Repeat("😀", 32)
	tests := []struct {
		name      string
		in        string
		wantNames []string
		wantText  string
	}{
		{"one", "1 bob hi", []string{"bob"}, "hi"},
		{"two", "2 bob carol hi", []string{"bob", "carol"}, "hi"},
		{"repeated name", "2 bob bob hi", []string{"bob", "bob"}, "hi"},
		{"text with spaces", "1 bob hello there world", []string{"bob"}, "hello there world"},
		{"leading space kept", "1 bob  hi", []string{"bob"}, " hi"},
		{"trailing space kept", "1 bob hi  ", []string{"bob"}, "hi  "},
		{"text of one space", "1 bob  ", []string{"bob"}, " "},
		{"tabs kept", "1 bob \thi\tthere\t", []string{"bob"}, "\thi\tthere\t"},
		{"text looks like a list", "1 bob 2 carol hi", []string{"bob"}, "2 carol hi"},
		{"multibyte", "2 日本 😀 ünï", []string{"日本", "😀"}, "ünï"},
		{"longest name", "1 " + longName + " x", []string{longName}, "x"},
		{"dots", "2 ... .a ok", []string{"...", ".a"}, "ok"},
		{"1024 names", ptList(chattest.Usernames(1024)) + " hi", chattest.Usernames(1024), "hi"},
		{"longest text", "1 bob " + strings.Repeat("t", 65536), []string{"bob"}, strings.Repeat("t", 65536)},
	}
	for _, tc := range tests {
		names, text, err := protocol.ParseSend([]byte(tc.in))
		if err != nil {
			t.Errorf("ParseSend [%s] %.60q: %v", tc.name, tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.wantNames, names); diff != "" {
			t.Errorf("ParseSend [%s] names (-want +got):\n%s", tc.name, diff)
		}
		if string(text) != tc.wantText {
			t.Errorf("ParseSend [%s] text = %.60q, want %.60q", tc.name, text, tc.wantText)
		}
	}

	bad := []struct{ name, in string }{
		{"empty", ""},
		{"count only", "1"},
		{"count and space", "1 "},
		{"no text, no space", "1 bob"},
		{"empty text", "1 bob "},
		{"N=0", "0 hi"},
		{"N=0 with space", "0  hi"},
		{"leading zero", "01 bob hi"},
		{"negative", "-1 bob hi"},
		{"not a number", "x bob hi"},
		{"N=1025", ptList(chattest.Usernames(1025)) + " hi"},
		{"N too big", "99999999999 bob hi"},
		{"count larger than the list", "2 bob hi"},
		{"count larger, names only", "3 a b c"},
		{"leading space", " 1 bob hi"},
		{"two spaces after count", "1  bob hi"},
		{"tab between fields", "1\tbob hi"},
		{"tab after name", "1 bob\thi"},
		{"name dot", "1 . hi"},
		{"name dot dot", "1 .. hi"},
		{"name with slash", "1 b/ob hi"},
		{"name with backslash", "1 b\\ob hi"},
		{"name 33 long", "1 " + strings.Repeat("x", 33) + " hi"},
		{"name with NBSP", "1 a\u00a0b hi"},
		{"name with ZWSP", "1 a\u200b hi"},
		{"name invalid UTF-8", "1 \xff hi"},
		{"bad second name", "2 bob \u202e hi"},
		{"text with LF", "1 bob hi\n"},
		{"text with CR", "1 bob hi\rthere"},
		{"text with NUL", "1 bob hi\x00"},
		{"text with DEL", "1 bob \x7f"},
		{"text with NEL", "1 bob \u0085"},
		{"text invalid UTF-8", "1 bob \xff"},
		{"text too long", "1 bob " + strings.Repeat("t", 65537)},
	}
	for _, tc := range bad {
		names, text, err := protocol.ParseSend([]byte(tc.in))
		if err == nil {
			t.Errorf("ParseSend [%s] %.60q = %q, %.40q; want an error", tc.name, tc.in, names, text)
		}
	}
}

func TestParseSendErrorKinds(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"0 hi", protocol.ErrBadCount},
		{"1025 a hi", protocol.ErrBadCount},
		{"01 a hi", protocol.ErrBadCount},
		{"1 . hi", protocol.ErrBadUsername},
		{"1  hi", protocol.ErrBadUsername},
		{"1 bob ", protocol.ErrBadText},
		{"1 bob \x01", protocol.ErrBadText},
		{"1", protocol.ErrMalformed},
		{"2 bob hi", protocol.ErrMalformed},
	}
	for _, tc := range tests {
		if _, _, err := protocol.ParseSend([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("ParseSend(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestParseForward(t *testing.T) {
	good := []struct{ in, sender, text string }{
		{"1 alice hi", "alice", "hi"},
		{"1 alice  hi  ", "alice", " hi  "},
		{"1 alice a b c", "alice", "a b c"},
		{"1 日本 \t", "日本", "\t"},
	}
	for _, tc := range good {
		sender, text, err := protocol.ParseForward([]byte(tc.in))
		if err != nil || sender != tc.sender || string(text) != tc.text {
			t.Errorf("ParseForward(%q) = %q, %q, %v; want %q, %q", tc.in, sender, text, err, tc.sender, tc.text)
		}
	}
	for _, in := range []string{
		"", "1", "1 alice", "1 alice ", "2 alice bob hi", "0 hi", "01 alice hi",
		"1 . hi", "1 a/b hi", "1  hi", "1 alice \x01", "1 alice hi\n", "1 alice \xc3",
		"x alice hi", "1 " + strings.Repeat("y", 33) + " hi",
	} {
		if s, txt, err := protocol.ParseForward([]byte(in)); err == nil {
			t.Errorf("ParseForward(%q) = %q, %q; want an error", in, s, txt)
		}
	}
}

func TestParseUsersList(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"0", []string{}},
		{"1 alice", []string{"alice"}},
		{"2 alice bob", []string{"alice", "bob"}},
		{"3 A B a", []string{"A", "B", "a"}},
		{"1 " + strings.Repeat("😀", 32), []string{strings.Repeat("😀", 32)}},
		{ptList(chattest.Usernames(1500)), chattest.Usernames(1500)}, // no upper bound of 1024 here
	}
	for _, tc := range good {
		got, err := protocol.ParseUsersList([]byte(tc.in))
		if err != nil {
			t.Errorf("ParseUsersList(%.40q): %v", tc.in, err)
			continue
		}
		if got == nil {
			t.Errorf("ParseUsersList(%.40q) = nil slice", tc.in)
		}
		if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ParseUsersList(%.40q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, in := range []string{
		"", " ", "0 ", "0 alice", "00", "01 alice", "-1", "x", "1", "1 ", "1 alice ",
		"2 alice", "2 alice ", "2 alice bob ", "1 alice bob", "2 alice  bob", " 1 alice",
		"1  alice", "2 alice\tbob", "1 .", "1 ..", "1 a/b", "1 a\\b", "1 a\u00a0b", "1 a\u200db",
		"1 \xff", "1 " + strings.Repeat("x", 33), "1000000 alice", "1073741825 a",
		"99999999999 a",
	} {
		if got, err := protocol.ParseUsersList([]byte(in)); err == nil {
			t.Errorf("ParseUsersList(%q) = %q; want an error", in, got)
		}
	}
}

func TestReadFileHead(t *testing.T) {
	longName := strings.Repeat("😀", 32)
	longFile := strings.Repeat("f", 200)
	type result struct {
		Names    []string
		Filename string
		Content  string
	}
	good := []struct {
		name       string
		typ        string
		payload    string
		minN, maxN int
		want       result
	}{
		{"simple", "send_file", "1 bob a.txt hello", 1, 1024, result{[]string{"bob"}, "a.txt", "hello"}},
		{"empty content", "send_file", "1 bob a.txt ", 1, 1024, result{[]string{"bob"}, "a.txt", ""}},
		{"content with spaces and binary", "send_file", "1 bob a.txt  he llo\x00\xff\n", 1, 1024, result{[]string{"bob"}, "a.txt", " he llo\x00\xff\n"}},
		{"two names", "send_file", "2 bob carol f x", 1, 1024, result{[]string{"bob", "carol"}, "f", "x"}},
		{"repeated name", "send_file", "2 bob bob f x", 1, 1024, result{[]string{"bob", "bob"}, "f", "x"}},
		{"longest name and filename", "send_file", "1 " + longName + " " + longFile + " c", 1, 1024, result{[]string{longName}, longFile, "c"}},
		{"forward", "forward_file", "1 alice ..data ", 1, 1, result{[]string{"alice"}, "..data", ""}},
		{"1024 names", "send_file", ptList(chattest.Usernames(1024)) + " f.bin 12", 1, 1024, result{chattest.Usernames(1024), "f.bin", "12"}},
	}
	for _, tc := range good {
		rtBothWays(rtWire(tc.typ, tc.payload)+"request_users_list 0 ", func(src io.Reader, onebyte bool) {
			r := protocol.NewReaderSize(src, 16)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			names, filename, err := protocol.ReadFileHead(r, tc.minN, tc.maxN)
			if err != nil {
				t.Errorf("ReadFileHead [%s]: %v", tc.name, err)
				return
			}
			if r.Remaining() != int64(len(tc.want.Content)) {
				t.Errorf("ReadFileHead [%s]: Remaining() = %d, want %d", tc.name, r.Remaining(), len(tc.want.Content))
			}
			content, err := io.ReadAll(r)
			if err != nil {
				t.Errorf("ReadFileHead [%s]: reading content: %v", tc.name, err)
			}
			got := result{names, filename, string(content)}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ReadFileHead [%s] onebyte %v (-want +got):\n%s", tc.name, onebyte, diff)
			}
			if h, err := r.ReadHeader(); err != nil || h.Type != protocol.RequestUsersList {
				t.Errorf("ReadFileHead [%s]: next header = %+v, %v", tc.name, h, err)
			}
		})
	}

	bad := []struct {
		name       string
		frame      string
		minN, maxN int
		want       error
	}{
		{"no space after filename", rtWire("send_file", "1 bob a.txt"), 1, 1024, protocol.ErrMalformed},
		{"no filename", rtWire("send_file", "1 bob "), 1, 1024, protocol.ErrMalformed},
		{"empty payload", "send_file 0 ", 1, 1024, protocol.ErrMalformed},
		{"filename 201 bytes", rtWire("send_file", "1 bob "+strings.Repeat("f", 201)+" x"), 1, 1024, protocol.ErrTooLong},
		{"empty filename", rtWire("send_file", "1 bob  x"), 1, 1024, protocol.ErrBadFilename},
		{"filename dot", rtWire("send_file", "1 bob . x"), 1, 1024, protocol.ErrBadFilename},
		{"filename dot dot", rtWire("send_file", "1 bob .. x"), 1, 1024, protocol.ErrBadFilename},
		{"filename with slash", rtWire("send_file", "1 bob a/b x"), 1, 1024, protocol.ErrBadFilename},
		{"filename with backslash", rtWire("send_file", "1 bob a\\b x"), 1, 1024, protocol.ErrBadFilename},
		{"filename with RLO", rtWire("send_file", "1 bob a\u202etxt.exe x"), 1, 1024, protocol.ErrBadFilename},
		{"filename with NBSP", rtWire("send_file", "1 bob a\u00a0b x"), 1, 1024, protocol.ErrBadFilename},
		{"filename invalid UTF-8", rtWire("send_file", "1 bob \xfe x"), 1, 1024, protocol.ErrBadFilename},
		{"bad username", rtWire("send_file", "1 . f x"), 1, 1024, protocol.ErrBadUsername},
		{"username too long", rtWire("send_file", "1 "+strings.Repeat("x", 33)+" f x"), 1, 1024, protocol.ErrBadUsername},
		{"username over 128 bytes", rtWire("send_file", "1 "+strings.Repeat("x", 129)+" f x"), 1, 1024, protocol.ErrTooLong},
		{"empty username", rtWire("send_file", "1  f x"), 1, 1024, protocol.ErrBadUsername},
		{"N=0", rtWire("send_file", "0 f x"), 1, 1024, protocol.ErrBadCount},
		{"leading zero", rtWire("send_file", "01 bob f x"), 1, 1024, protocol.ErrBadCount},
		{"N=1025", rtWire("send_file", ptList(chattest.Usernames(1025))+" f x"), 1, 1024, protocol.ErrBadCount},
		{"N=2 in a forward", rtWire("forward_file", "2 a b f x"), 1, 1, protocol.ErrBadCount},
		{"count of 11 digits", rtWire("send_file", "12345678901 bob f x"), 1, 1024, protocol.ErrTooLong},
		{"count larger than the list", rtWire("send_file", "2 bob a.txt x"), 1, 1024, protocol.ErrMalformed},
		{"truncated stream", "send_file 30 1 bob a.txt", 1, 1024, io.ErrUnexpectedEOF},
	}
	for _, tc := range bad {
		rtBothWays(tc.frame, func(src io.Reader, onebyte bool) {
			r := protocol.NewReaderSize(src, 16)
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			names, filename, err := protocol.ReadFileHead(r, tc.minN, tc.maxN)
			if !errors.Is(err, tc.want) {
				t.Errorf("ReadFileHead [%s] onebyte %v = %q, %q, %v; want %v", tc.name, onebyte, names, filename, err, tc.want)
			}
		})
	}
}

// Append* then decode gives the same values back.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"alice", "x", strings.Repeat("😀", 32), "..."} {
		for _, typ := range []protocol.Type{protocol.Join, protocol.Disconnect} {
			frame := protocol.AppendJoin(nil, typ, name)
			if want := rtWire(typ.String(), name); string(frame) != want {
				t.Errorf("AppendJoin(%v, %q) = %q, want %q", typ, name, frame, want)
			}
			h, p := ptDecodeOne(t, frame)
			got, err := protocol.ParseJoin(p)
			if h.Type != typ || err != nil || got != name {
				t.Errorf("AppendJoin(%v, %q) decodes to %v %q, %v", typ, name, h.Type, got, err)
			}
		}
	}

	for _, typ := range []protocol.Type{protocol.RequestUsersList, protocol.ErrUnknownMessage, protocol.ErrServerFull, protocol.ErrUsernameUnavailable} {
		frame := protocol.AppendEmpty(nil, typ)
		if want := typ.String() + " 0 "; string(frame) != want {
			t.Errorf("AppendEmpty(%v) = %q, want %q", typ, frame, want)
		}
		h, p := ptDecodeOne(t, frame)
		if h.Type != typ || len(p) != 0 {
			t.Errorf("AppendEmpty(%v) decodes to %+v %q", typ, h, p)
		}
	}

	for _, names := range [][]string{{}, {"alice"}, {"alice", "bob"}, {"A", "B", "a", "b", "日本", "😀"}, chattest.Usernames(1500)} {
		frame := protocol.AppendUsersList(nil, names)
		if want := rtWire("response_users_list", ptUsersPayload(names)); string(frame) != want {
			t.Errorf("AppendUsersList(%.40q) = %.60q, want %.60q", names, frame, want)
		}
		h, p := ptDecodeOne(t, frame)
		got, err := protocol.ParseUsersList(p)
		if h.Type != protocol.ResponseUsersList || err != nil {
			t.Errorf("AppendUsersList(%.40q) decodes to %v, %v", names, h.Type, err)
		}
		if diff := cmp.Diff(names, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("AppendUsersList round trip (-want +got):\n%s", diff)
		}
	}

	texts := []string{"hi", " ", "  leading and trailing  ", "\ttabs\t", "日本語 😀", "2 carol hi", strings.Repeat("t", 65536)}
	lists := [][]string{{"bob"}, {"bob", "carol"}, {"bob", "bob"}, {strings.Repeat("😀", 32)}, chattest.Usernames(1024)}
	for _, names := range lists {
		for _, text := range texts {
			frame := protocol.AppendMessage(nil, protocol.SendMessage, names, []byte(text))
			if want := rtWire("send_message", ptList(names)+" "+text); string(frame) != want {
				t.Errorf("AppendMessage(%.40q, %.40q) = %.80q, want %.80q", names, text, frame, want)
			}
			h, p := ptDecodeOne(t, frame)
			gotNames, gotText, err := protocol.ParseSend(p)
			if h.Type != protocol.SendMessage || err != nil || string(gotText) != text || !cmp.Equal(names, gotNames) {
				t.Errorf("send_message round trip of %.40q %.40q: %v %.40q %.40q, %v", names, text, h.Type, gotNames, gotText, err)
			}
		}
	}
	for _, sender := range []string{"alice", strings.Repeat("é", 32)} {
		for _, text := range texts {
			frame := protocol.AppendMessage(nil, protocol.ForwardMessage, []string{sender}, []byte(text))
			if want := rtWire("forward_message", "1 "+sender+" "+text); string(frame) != want {
				t.Errorf("AppendMessage(forward, %q, %.40q) = %.80q, want %.80q", sender, text, frame, want)
			}
			h, p := ptDecodeOne(t, frame)
			gotSender, gotText, err := protocol.ParseForward(p)
			if h.Type != protocol.ForwardMessage || err != nil || gotSender != sender || string(gotText) != text {
				t.Errorf("forward_message round trip of %q %.40q: %v %q %.40q, %v", sender, text, h.Type, gotSender, gotText, err)
			}
		}
	}

	contents := []string{"", "x", "hello world", "\x00\xff \n\r\t", strings.Repeat("C", 100000)}
	for _, typ := range []protocol.Type{protocol.SendFile, protocol.ForwardFile} {
		for _, names := range [][]string{{"bob"}, {"bob", "carol"}, chattest.Usernames(1024)} {
			if typ == protocol.ForwardFile && len(names) != 1 {
				continue
			}
			for _, fname := range []string{"a.txt", "...", strings.Repeat("é", 100)} {
				for _, content := range contents {
					frame := protocol.AppendFileHead(nil, typ, names, fname, int64(len(content)))
					frame = append(frame, content...)
					if want := rtWire(typ.String(), ptList(names)+" "+fname+" "+content); string(frame) != want {
						t.Errorf("AppendFileHead(%v, %.40q, %q, %d) + content = %.80q, want %.80q", typ, names, fname, len(content), frame, want)
					}
					r := protocol.NewReaderSize(iotest.HalfReader(bytes.NewReader(frame)), 16)
					h, err := r.ReadHeader()
					if err != nil || h.Type != typ {
						t.Fatalf("header = %+v, %v", h, err)
					}
					maxN := 1024
					if typ == protocol.ForwardFile {
						maxN = 1
					}
					gotNames, gotName, err := protocol.ReadFileHead(r, 1, maxN)
					if err != nil {
						t.Errorf("ReadFileHead: %v", err)
						continue
					}
					gotContent, err := io.ReadAll(r)
					if err != nil || gotName != fname || string(gotContent) != content || !cmp.Equal(names, gotNames) {
						t.Errorf("%v round trip: %.40q %q %d bytes, %v", typ, gotNames, gotName, len(gotContent), err)
					}
				}
			}
		}
	}
}

// ptUsersPayload renders a response_users_list payload by hand.
func ptUsersPayload(names []string) string {
	if len(names) == 0 {
		return "0"
	}
	return ptList(names)
}

// ptDecodeOne decodes the single frame of b, fed one byte at a time.
func ptDecodeOne(t *testing.T, b []byte) (protocol.Header, []byte) {
	t.Helper()
	r := protocol.NewReaderSize(iotest.OneByteReader(bytes.NewReader(b)), 16)
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatalf("ReadHeader(%.60q): %v", b, err)
	}
	p, err := r.ReadPayload(nil)
	if err != nil {
		t.Fatalf("ReadPayload(%.60q): %v", b, err)
	}
	if _, err := r.ReadHeader(); err != io.EOF {
		t.Fatalf("after the frame %.60q: %v, want io.EOF", b, err)
	}
	return h, p
}

// Every breach of the rules wraps ErrMalformed, so a caller tells them
// from stream errors with one check.
func TestRuleErrorsWrapMalformed(t *testing.T) {
	for _, err := range []error{
		protocol.ErrBadUsername, protocol.ErrBadFilename, protocol.ErrBadText,
		protocol.ErrBadCount, protocol.ErrTooLong,
		protocol.ValidUsername("a b"),
		protocol.ValidFilename(".."),
		protocol.ValidText([]byte("\x00")),
		func() error { _, err := protocol.ParseCount([]byte("01"), 1, 9); return err }(),
		func() error { _, _, err := protocol.ParseSend([]byte("1 bob")); return err }(),
		func() error { _, err := protocol.ParseFeatures([]byte("A")); return err }(),
	} {
		if !errors.Is(err, protocol.ErrMalformed) {
			t.Errorf("%v does not wrap ErrMalformed", err)
		}
	}
	if errors.Is(protocol.ErrBadUsername, protocol.ErrBadFilename) {
		t.Error("ErrBadUsername matches ErrBadFilename")
	}
}
