package terminal

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestComplete(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"notes.txt", "notes.md", "report.pdf", ".hidden", "my file.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("docs", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	c := newCompleter("alice")
	c.addNames([]string{"bob", "bobby", "carol"})
	c.addNames([]string{"bob"})

	for _, tc := range []struct {
		line string // | marks the cursor
		want string // | marks the new cursor; "" means nothing to do
		list []string
	}{
		{line: "|", list: commands},
		{line: "m|", want: "msg |"},
		{line: "  l|", want: "  list|"},
		{line: "q| rest", want: "quit| rest"},
		{line: "x|"},
		{line: "msg |"},
		{line: "msg 2|"},
		{line: "msg 2 c|", want: "msg 2 carol |"},
		{line: "msg 2 b|", want: "msg 2 bob|"},
		{line: "msg 2 bob|", list: []string{"bob", "bobby"}},
		{line: "msg 2 carol b|", want: "msg 2 carol bob|"},
		{line: "msg 1 carol hi a|", want: "msg 1 carol hi alice |"},
		{line: "msg x a|", want: "msg x alice |"},
		{line: "msg 1 z|"},
		{line: "list a|"},
		{line: "file 1 bob " + dir + "/no|", want: "file 1 bob " + dir + "/notes.|"},
		{line: "file 1 bob " + dir + "/notes.|", list: []string{dir + "/notes.md", dir + "/notes.txt"}},
		{line: "file 1 bob " + dir + "/r|", want: "file 1 bob " + dir + "/report.pdf|"},
		{line: "file 1 bob " + dir + "/d|", want: "file 1 bob " + dir + "/docs/|"},
		{line: "file 1 bob " + dir + "/li|", want: "file 1 bob " + dir + "/link/|"},
		{line: "file 1 bob " + dir + "/my|", want: "file 1 bob " + dir + "/my file.txt|"},
		{line: "file 1 bob " + dir + "/my f|", want: "file 1 bob " + dir + "/my file.txt|"},
		{line: "file 1 bob " + dir + "/.h|", want: "file 1 bob " + dir + "/.hidden|"},
		{line: "file 1 bob " + dir + "/zz|"},
	} {
		c.listedFor = ""
		line, pos := strings.ReplaceAll(tc.line, "|", ""), strings.Index(tc.line, "|")
		res, ok := c.complete(line, pos)
		switch {
		case tc.want == "" && tc.list == nil:
			if ok {
				t.Errorf("%q: completed to %+v, want nothing", tc.line, res)
			}
		case tc.list != nil:
			if !ok || !slices.Equal(res.list, tc.list) || res.line != line || res.pos != pos {
				t.Errorf("%q: got %+v, %v; want the list %q", tc.line, res, ok, tc.list)
			}
		default:
			got := res.line[:res.pos] + "|" + res.line[res.pos:]
			if !ok || res.list != nil || got != tc.want {
				t.Errorf("%q: got %q (%+v, %v), want %q", tc.line, got, res, ok, tc.want)
			}
		}
	}

	// The same candidates are listed once; Tab again does nothing.
	c.listedFor = ""
	if _, ok := c.complete("msg 1 bob", 9); !ok {
		t.Fatal("first Tab listed nothing")
	}
	if _, ok := c.complete("msg 1 bob", 9); ok {
		t.Fatal("second Tab listed again")
	}
}

// A user who left (a leave notice, client.Hooks.Left) is no longer
// offered; one's own name always is.
func TestCompleteDropsWhoLeft(t *testing.T) {
	c := newCompleter("alice")
	c.addNames([]string{"alice", "bob", "bobby"})
	c.dropName("bobby")
	c.dropName("alice")
	c.dropName("ghost") // never seen: nothing to do
	for _, tc := range []struct{ line, want string }{
		{"msg 1 b", "msg 1 bob "},
		{"msg 1 a", "msg 1 alice "},
	} {
		if res, ok := c.complete(tc.line, len(tc.line)); !ok || res.line != tc.want {
			t.Errorf("%q: got %q (%v), want %q", tc.line, res.line, ok, tc.want)
		}
	}
	c.addNames([]string{"bobby"}) // back
	if res, ok := c.complete("msg 1 bobb", 10); !ok || res.line != "msg 1 bobby " {
		t.Errorf("bobby back: got %q (%v)", res.line, ok)
	}
}

func TestCompletePathsInWorkingDirectory(t *testing.T) {
	c := newCompleter("alice")
	c.readDir = func(dir string) ([]os.DirEntry, error) {
		if dir != "." {
			t.Errorf("listed %q, want .", dir)
		}
		return []os.DirEntry{entry("a.txt"), entry("b.txt")}, nil
	}
	res, ok := c.complete("file 1 bob a", 12)
	if !ok || res.line != "file 1 bob a.txt" {
		t.Fatalf("got %+v %v", res, ok)
	}
}

type entry string

func (e entry) Name() string               { return string(e) }
func (e entry) IsDir() bool                { return false }
func (e entry) Type() fs.FileMode          { return 0 }
func (e entry) Info() (fs.FileInfo, error) { return nil, fs.ErrNotExist }

func TestCommonPrefixKeepsWholeRunes(t *testing.T) {
	if got := commonPrefix([]string{"héllo", "hàllo"}); got != "h" {
		t.Fatalf("commonPrefix = %q, want h", got)
	}
	if got := commonPrefix([]string{"bob", "bobby"}); got != "bob" {
		t.Fatalf("commonPrefix = %q, want bob", got)
	}
}

func TestHistorySearch(t *testing.T) {
	h := &history{}
	for _, l := range []string{"msg 1 bob a", "list", "msg 1 bob b", "msg 1 bob b", " "} {
		h.Add(l)
	}
	if h.Len() != 3 || h.At(0) != "msg 1 bob b" {
		t.Fatalf("history: %q", h.lines)
	}
	if i, off, ok := h.search("bob", 0); !ok || i != 0 || off != 6 {
		t.Fatalf("search = %d %d %v", i, off, ok)
	}
	if i, _, ok := h.search("bob", 1); !ok || i != 2 {
		t.Fatalf("search older = %d %v", i, ok)
	}
	if _, _, ok := h.search("zzz", 0); ok {
		t.Fatal("found what is not there")
	}
}

func TestProgressFormat(t *testing.T) {
	now := time.Now()
	tr := &transfer{dir: "send", name: "big.bin", total: 10 << 20, start: now.Add(-2 * time.Second)}
	tr.observe(now.Add(-2*time.Second), 0)
	tr.observe(now, 4<<20)
	got := tr.bar(now, 100, palette{})
	want := "sending big.bin [============>                 ]  40%  4.0 MiB / 10.0 MiB  2.0 MiB/s  0:03 left"
	if got != want {
		t.Fatalf("bar:\n got %q\nwant %q", got, want)
	}
	if n := len(tr.bar(now, 40, palette{})); n > 39 {
		t.Fatalf("a bar for 40 columns is %d long", n)
	}
	if got := clock(3725 * time.Second); got != "1:02:05" {
		t.Errorf("clock = %q", got)
	}
}
