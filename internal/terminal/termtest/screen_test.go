package termtest

import (
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
)

func TestScreen(t *testing.T) {
	for _, c := range []struct {
		name  string
		cols  int
		write string
		rows  []string // the first rows, from the top
		row   int      // the cursor
		col   int
	}{
		{"ascii", 10, "abc", []string{"abc"}, 0, 3},
		{"wide characters take two columns", 10, "日本語x", []string{"日本語x"}, 0, 7},
		{"a combining mark joins its base", 10, "e\u0301x", []string{"e\u0301x"}, 0, 2},
		{"a ZWJ sequence is one wide cell", 10, "👩\u200d👩\u200d👧x", []string{"👩\u200d👩\u200d👧x"}, 0, 3},
		{"a flag is one wide cell", 10, "🇫🇷x", []string{"🇫🇷x"}, 0, 3},
		{"a variation selector widens", 10, "\u2764\ufe0fx", []string{"\u2764\ufe0fx"}, 0, 3},
		{"a wide character wraps whole", 5, "abcd日", []string{"abcd", "日"}, 1, 2},
		{"deferred wrap", 4, "abcd", []string{"abcd"}, 0, 3},
		{"overwriting half of a wide character blanks it", 10, "日本\r\x1b[1Cx", []string{" x本"}, 0, 2},
		{"overwriting the right half", 10, "日本\r\x1b[3Cx", []string{"日 x"}, 0, 4},
		{"erasing from the right half", 10, "日本\r\x1b[3C\x1b[K", []string{"日"}, 0, 3},
		{"cursor moves by columns", 10, "日本語\r\x1b[4Cx", []string{"日本x"}, 0, 5},
		{"no joining across a cursor move", 10, "e\x1b[1C\u0301", []string{"e \u0301"}, 0, 3},
	} {
		s := New(3, c.cols)
		s.Write([]byte(c.write))
		rows := s.Rows()
		r, col := s.Cursor()
		if strings.Join(rows[:len(c.rows)], "|") != strings.Join(c.rows, "|") || r != c.row || col != c.col {
			t.Errorf("%s: %q shows %q, cursor %d,%d; want %q, %d,%d", c.name, c.write, rows, r, col, c.rows, c.row, c.col)
		}
	}
}

func TestScreenSplitWrites(t *testing.T) {
	s := New(2, 10)
	for _, b := range []byte("日\x1b[1m本\x1b[0m") {
		s.Write([]byte{b})
	}
	v, ok := s.Wait(time.Second, func(v View) bool { return v.CursorRow == "日本" && v.Col == 4 })
	if !ok {
		t.Fatalf("byte by byte: %q at %d", v.CursorRow, v.Col)
	}
}

func TestAwait(t *testing.T) {
	s := New(3, 10)
	go s.Write([]byte("hello"))
	if v := s.Await(t, 5*time.Second, "hello", func(v View) bool { return v.CursorRow == "hello" }); v.Col != 5 {
		t.Errorf("Await returned the cursor at column %d, want 5", v.Col)
	}
	msg := chattest.Fails(t, func(tb testing.TB) {
		s.Await(tb, 20*time.Millisecond, "a row never written", func(v View) bool { return v.Contains("never") })
	})
	if !strings.Contains(msg, "waiting for a row never written; screen:") || !strings.Contains(msg, "hello") {
		t.Errorf("Await of a row never written failed with %q", msg)
	}
}
