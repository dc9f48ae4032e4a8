package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/client"
)

func TestParseCommand(t *testing.T) {
	longText := strings.Repeat("t", 65536)
	tests := []struct {
		name string
		in   string
		want client.Command
	}{
		// Empty lines.
		{"empty", "", client.Command{Kind: client.None}},
		{"spaces", "   ", client.Command{Kind: client.None}},
		{"tabs and CRLF", "\t \r\n", client.Command{Kind: client.None}},
		{"unicode white space", "\u00a0\u3000\u2028\u0085", client.Command{Kind: client.None}},

		// Commands without arguments.
		{"list", "list", client.Command{Kind: client.List}},
		{"list CRLF", "list\r\n", client.Command{Kind: client.List}},
		{"list LF", "list\n", client.Command{Kind: client.List}},
		{"list padded", " \t list \t ", client.Command{Kind: client.List}},
		{"list NBSP padded", "\u00a0list\u3000", client.Command{Kind: client.List}},
		{"help", "help", client.Command{Kind: client.Help}},
		{"help CRLF", "  help\r\n", client.Command{Kind: client.Help}},
		{"quit", "quit", client.Command{Kind: client.Quit}},
		{"quit tabs", "\tquit\t\r\n", client.Command{Kind: client.Quit}},

		// msg.
		{"msg", "msg 1 bob hi", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi"}},
		{"msg two", "msg 2 bob carol hello there", client.Command{Kind: client.Msg, Names: []string{"bob", "carol"}, Text: "hello there"}},
		{"msg CRLF", "msg 1 bob hi\r\n", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi"}},
		{"msg runs of blanks", "msg  1\t\tbob \t  hi", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi"}},
		{"msg padded", " \t msg 1 bob hi \t \r\n", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi"}},
		{"msg tabs only", "msg\t1\tbob\thi", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi"}},
		{"msg inner spacing kept", "msg 1 bob hi   there\t\tyou", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi   there\t\tyou"}},
		{"msg inner spacing kept, trailing trimmed", "msg 2 bob  carol \t a  b  \r\n", client.Command{Kind: client.Msg, Names: []string{"bob", "carol"}, Text: "a  b"}},
		{"msg trailing NBSP trimmed", "msg 1 bob hi\u00a0", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "hi"}},
		{"msg text starts with NBSP", "msg 1 bob \u00a0hi", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "\u00a0hi"}},
		{"msg repeated name", "msg 2 bob bob hi", client.Command{Kind: client.Msg, Names: []string{"bob", "bob"}, Text: "hi"}},
		{"msg text looks like a list", "msg 1 bob 2 carol hi", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "2 carol hi"}},
		{"msg text is a command", "msg 1 bob quit", client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: "quit"}},
		{"msg multibyte", "msg 1 日本 こんにちは 世界", client.Command{Kind: client.Msg, Names: []string{"日本"}, Text: "こんにちは 世界"}},
		{"msg dots name", "msg 1 ... hi", client.Command{Kind: client.Msg, Names: []string{"..."}, Text: "hi"}},
		{"msg longest name", "msg 1 " + strings.Repeat("😀", 32) + " hi", client.Command{Kind: client.Msg, Names: []string{strings.Repeat("😀", 32)}, Text: "hi"}},
		{"msg 1024", "msg 1024 " + strings.Join(chattest.Usernames(1024), " ") + " hi", client.Command{Kind: client.Msg, Names: chattest.Usernames(1024), Text: "hi"}},
		{"msg longest text", "msg 1 bob " + longText, client.Command{Kind: client.Msg, Names: []string{"bob"}, Text: longText}},

		// file.
		{"file", "file 1 bob a.txt", client.Command{Kind: client.File, Names: []string{"bob"}, Path: "a.txt"}},
		{"file path with spaces", "file 1 bob my file.txt", client.Command{Kind: client.File, Names: []string{"bob"}, Path: "my file.txt"}},
		{"file path with inner blanks", "file\t1\tbob\t  path with  spaces\t.txt  \r\n", client.Command{Kind: client.File, Names: []string{"bob"}, Path: "path with  spaces\t.txt"}},
		{"file absolute path", "file 2 bob carol /tmp/a b/c.txt", client.Command{Kind: client.File, Names: []string{"bob", "carol"}, Path: "/tmp/a b/c.txt"}},
		{"file relative path", "file 1 bob ../x", client.Command{Kind: client.File, Names: []string{"bob"}, Path: "../x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := client.ParseCommand(tc.in)
			if err != nil {
				t.Fatalf("ParseCommand(%.60q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseCommand(%.60q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"unknown word", "hello"},
		{"LIST", "LIST"},
		{"List", "List"},
		{"MSG", "MSG 1 bob hi"},
		{"list x", "list x"},
		{"list x tab", "list\tx"},
		{"help arg", "help me"},
		{"quit arg", "quit now"},
		{"lists", "lists"},
		{"msgs", "msgs 1 bob hi"},
		{"slash command", "/msg 1 bob hi"},
		{"NBSP after msg", "msg\u00a01 bob hi"},
		{"msg alone", "msg"},
		{"msg count only", "msg 1"},
		{"msg no text", "msg 1 bob"},
		{"msg only blanks after names", "msg 1 bob  \t "},
		{"msg 01", "msg 01 a hi"},
		{"msg 0", "msg 0 a hi"},
		{"msg 2 with one name and text", "msg 2 a hi"},
		{"msg 1025", "msg 1025 " + strings.Join(chattest.Usernames(1025), " ") + " hi"},
		{"msg huge count", "msg 99999999999 a hi"},
		{"msg negative", "msg -1 a hi"},
		{"msg plus", "msg +1 a hi"},
		{"msg word count", "msg one a hi"},
		{"msg name dot", "msg 1 . hi"},
		{"msg name dot dot", "msg 1 .. hi"},
		{"msg name slash", "msg 1 a/b hi"},
		{"msg name backslash", "msg 1 a\\b hi"},
		{"msg name too long", "msg 1 " + strings.Repeat("x", 33) + " hi"},
		{"msg name with NBSP", "msg 1 a\u00a0b hi"},
		{"msg name with ZWSP", "msg 1 a\u200bb hi"},
		{"msg name with RLO", "msg 1 \u202eevil hi"},
		{"msg name invalid UTF-8", "msg 1 \xff hi"},
		{"msg text with control", "msg 1 bob hi\x01"},
		{"msg text with ESC", "msg 1 bob \x1b[2J"},
		{"msg text with DEL", "msg 1 bob hi\x7f"},
		{"msg text with CR inside", "msg 1 bob hi\rthere"},
		{"msg text with LF inside", "msg 1 bob hi\nthere"},
		{"msg text with C1", "msg 1 bob a\u0085b"},
		{"msg text invalid UTF-8", "msg 1 bob hi\xff"},
		{"msg text too long", "msg 1 bob " + strings.Repeat("t", 65537)},
		{"file no path", "file 1 bob"},
		{"file 0", "file 0 bob x"},
		{"file 01", "file 01 bob x"},
		{"file bad name", "file 1 . x"},
		{"file count larger than names", "file 3 bob carol"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := client.ParseCommand(tc.in)
			if !errors.Is(err, client.ErrInput) {
				t.Errorf("ParseCommand(%.60q) = %+v, %v; want ErrInput", tc.in, got, err)
			}
		})
	}
}
