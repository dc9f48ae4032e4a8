package client_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gochat/chat/internal/client"
	"github.com/gochat/chat/internal/protocol"
)

// cfUsername restates the username rule of PROTOCOL.md section 3.
func cfUsername(s string) bool {
	if s == "" || s == "." || s == ".." || !utf8.ValidString(s) || utf8.RuneCountInString(s) > 32 {
		return false
	}
	for _, r := range s {
		if r == '/' || r == '\\' || unicode.Is(unicode.White_Space, r) || unicode.In(r, unicode.Cc, unicode.Cf) {
			return false
		}
	}
	return true
}

// cfText restates the text rule of PROTOCOL.md section 3.
func cfText(s string) bool {
	if s == "" || len(s) > 65536 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r != '\t' && unicode.Is(unicode.Cc, r) {
			return false
		}
	}
	return true
}

func cfTrim(s string) string {
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if !unicode.Is(unicode.White_Space, r) {
			break
		}
		s = s[n:]
	}
	for s != "" {
		r, n := utf8.DecodeLastRuneInString(s)
		if !unicode.Is(unicode.White_Space, r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

// cfNext splits off a field ended by a space or tab and the blanks after it.
func cfNext(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] != ' ' && s[i] != '\t' {
		i++
	}
	field := s[:i]
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return field, s[i:]
}

// cfParse is a reference reading of PROTOCOL.md section 5.
func cfParse(line string) (client.Command, bool) {
	line = cfTrim(line)
	if line == "" {
		return client.Command{Kind: client.None}, true
	}
	word, rest := cfNext(line)
	switch word {
	case "list":
		return client.Command{Kind: client.List}, rest == ""
	case "help":
		return client.Command{Kind: client.Help}, rest == ""
	case "quit":
		return client.Command{Kind: client.Quit}, rest == ""
	case "msg", "file":
	default:
		return client.Command{}, false
	}
	count, rest := cfNext(rest)
	if count == "" || count[0] == '0' || len(count) > 4 {
		return client.Command{}, false
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 || n > 1024 || strconv.Itoa(n) != count {
		return client.Command{}, false
	}
	var names []string
	for range n {
		var name string
		name, rest = cfNext(rest)
		if !cfUsername(name) {
			return client.Command{}, false
		}
		names = append(names, name)
	}
	if rest == "" {
		return client.Command{}, false
	}
	if word == "file" {
		return client.Command{Kind: client.File, Names: names, Path: rest}, true
	}
	if !cfText(rest) {
		return client.Command{}, false
	}
	return client.Command{Kind: client.Msg, Names: names, Text: rest}, true
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"msg 1 bob hi", "list", " quit\r\n", "file 1 bob my file.txt", "msg 2 a b  c  ",
		"msg 01 a hi", "msg 2 a hi", "msg\t1\tbob\t\thi", "msg 1 bob \u00a0hi\u3000", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, err := client.ParseCommand(line)
		want, ok := cfParse(line)
		if err != nil {
			if !errors.Is(err, client.ErrInput) {
				t.Fatalf("ParseCommand(%q): error %v is not ErrInput", line, err)
			}
			if ok {
				t.Fatalf("ParseCommand(%q) refuses, the reference gives %+v", line, want)
			}
			return
		}
		if !ok {
			t.Fatalf("ParseCommand(%q) = %+v, the reference refuses", line, got)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ParseCommand(%q) (-reference +got):\n%s", line, diff)
		}

		switch got.Kind {
		case client.None, client.List, client.Help, client.Quit:
			if len(got.Names) != 0 || got.Text != "" || got.Path != "" {
				t.Fatalf("ParseCommand(%q) = %+v with arguments", line, got)
			}
			return
		case client.Msg, client.File:
		default:
			t.Fatalf("ParseCommand(%q): kind %d", line, got.Kind)
		}
		if len(got.Names) < 1 || len(got.Names) > protocol.MaxRecipients {
			t.Fatalf("ParseCommand(%q): %d names", line, len(got.Names))
		}
		for _, n := range got.Names {
			if protocol.ValidUsername(n) != nil || !cfUsername(n) {
				t.Fatalf("ParseCommand(%q): bad name %q", line, n)
			}
		}
		arg := got.Text
		if got.Kind == client.Msg {
			if got.Path != "" || protocol.ValidText([]byte(got.Text)) != nil {
				t.Fatalf("ParseCommand(%q) = %+v: bad text", line, got)
			}
		} else if got.Text != "" || got.Path == "" {
			t.Fatalf("ParseCommand(%q) = %+v: bad file", line, got)
		} else {
			arg = got.Path
		}
		// The argument starts with neither space nor tab and ends without
		// White_Space.
		if arg[0] == ' ' || arg[0] == '\t' {
			t.Fatalf("ParseCommand(%q): argument %q starts with a blank", line, arg)
		}
		if r, _ := utf8.DecodeLastRuneInString(arg); unicode.Is(unicode.White_Space, r) {
			t.Fatalf("ParseCommand(%q): argument %q ends with white space", line, arg)
		}

		// A canonical rendering, and a sloppy one, parse to the same command.
		word := "msg"
		if got.Kind == client.File {
			word = "file"
		}
		canon := word + " " + strconv.Itoa(len(got.Names)) + " " + strings.Join(got.Names, " ") + " " + arg
		again, err := client.ParseCommand(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q: %v", canon, line, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("canonical %q of %q (-first +again):\n%s", canon, line, diff)
		}
		sloppy := "\t " + word + "\t\t" + strconv.Itoa(len(got.Names)) + " \t" + strings.Join(got.Names, "  \t") + "\t  " + arg + " \t\r\n"
		again, err = client.ParseCommand(sloppy)
		if err != nil {
			t.Fatalf("sloppy %q of %q: %v", sloppy, line, err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Fatalf("sloppy %q of %q (-first +again):\n%s", sloppy, line, diff)
		}
	})
}
