package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// helpFlags is a flag set with a flag of each kind the programs have.
func helpFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	port := 0
	IntVarP(fs, &port, "port", "p", 15000)
	fs.StringP("address", "a", "localhost", "")
	fs.BoolP("help", "h", false, "")
	size := Size(1 << 30)
	fs.Var(&size, "max-file-size", "")
	limit := Limit(1024)
	fs.Var(&limit, "min-upload-rate", "")
	fs.Duration("join-timeout", 30*time.Second, "")
	fs.String("dir", "", "")
	fs.StringSlice("peers", nil, "")
	fs.Bool("plain", false, "")
	fs.Int("replicas", 0, "")
	fs.String("stray", "", "DIR\tA flag in no section")
	return fs
}

var testHelp = Help{
	Purpose: "x is a program for testing the help, with a purpose long enough to need more than one line of the help's width.",
	Usage:   "x [options]",
	Sections: []HelpSection{
		{Flags: []HelpFlag{
			{Name: "port", Text: "PORT\tThe server port"},
			{Name: "address", Text: "ADDRESS\tThe server's address"},
			{Name: "help", Text: "Print this help"},
		}},
		{Title: "More", Flags: []HelpFlag{
			{Name: "max-file-size", Text: "SIZE\tLargest file"},
			{Name: "min-upload-rate", Text: "SIZE\tSlowest upload (0: none)"},
			{Name: "join-timeout", Text: "DURATION\tJoin in time"},
			{Name: "dir", Text: "DIR\tA folder, defaults to the working directory"},
			{Name: "peers", Text: "A,B\tThe peers"},
			{Name: "plain", Text: "Be plain"},
			{Name: "replicas", Text: "N\tCopies, defaults to 3 with three servers or more, else 1"},
		}},
	},
	Footer: "The end.",
}

func TestHelp(t *testing.T) {
	fs := helpFlags()
	var b bytes.Buffer
	testHelp.Write(&b, fs)
	text := b.String()
	if !strings.HasPrefix(text, "x is a program for testing the help") {
		t.Errorf("the help does not open with the purpose:\n%s", text)
	}
	for _, want := range []string{
		"\nUsage: x [options]\n",
		"\n  -p, --port=PORT             The server port, defaults to 15000\n",
		"\n  -a, --address=ADDRESS       The server's address, defaults to localhost\n",
		"\n  -h, --help                  Print this help\n",
		"\nMore:\n",
		"\n      --max-file-size=SIZE    Largest file, defaults to 1G\n",
		"\n      --min-upload-rate=SIZE  Slowest upload (0: none), defaults to 1K\n",
		"\n      --join-timeout=DURATION\n                              Join in time, defaults to 30s\n",
		"\n      --dir=DIR               A folder, defaults to the working directory\n",
		"\n      --peers=A,B             The peers\n",
		"\n      --plain                 Be plain\n",
		"\n      --replicas=N            Copies, defaults to 3 with three servers or more,\n                              else 1\n",
		"\nOther options:\n      --stray=DIR             A flag in no section\n",
		"\nThe end.\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the help lacks %q:\n%s", want, text)
		}
	}
	for line := range strings.Lines(text) {
		if len(strings.TrimSuffix(line, "\n")) > helpWidth {
			t.Errorf("line wider than %d: %q", helpWidth, line)
		}
	}
}

func TestHelpCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(h *Help, fs *pflag.FlagSet)
		want string // in the error; "" for none
	}{
		{"whole", func(*Help, *pflag.FlagSet) {}, ""},
		{"unknown flag", func(h *Help, _ *pflag.FlagSet) {
			h.Sections = append(h.Sections, HelpSection{Flags: []HelpFlag{{Name: "gone", Text: "x"}}})
		}, "--gone, which is no flag"},
		{"twice", func(h *Help, _ *pflag.FlagSet) {
			h.Sections = append(h.Sections, HelpSection{Flags: []HelpFlag{{Name: "port", Text: "x"}}})
		}, "--port twice"},
		{"no help", func(_ *Help, fs *pflag.FlagSet) { fs.Bool("new", false, "") }, "--new has no help"},
		{"no text in a section", func(h *Help, _ *pflag.FlagSet) {
			h.Sections = append(h.Sections, HelpSection{Flags: []HelpFlag{{Name: "stray"}, {Name: "plain2"}}})
		}, "--plain2, which is no flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := testHelp
			h.Sections = append([]HelpSection(nil), testHelp.Sections...)
			fs := helpFlags()
			tc.edit(&h, fs)
			err := h.Check(fs)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{1 << 30, "1G"}, {8 << 20, "8M"}, {1024, "1K"}, {1536, "1536"}, {3 << 40, "3T"}, {0, "0"}} {
		if got := FormatSize(tc.n); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
		if tc.n > 0 {
			if back, err := ParseSize(FormatSize(tc.n)); err != nil || back != tc.n {
				t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tc.n, back, err)
			}
		}
	}
}

func TestHelpCheckText(t *testing.T) {
	write := func(h Help, fs *pflag.FlagSet) string {
		var b bytes.Buffer
		h.Write(&b, fs)
		return b.String()
	}
	whole := helpFlags()
	if err := testHelp.CheckText(whole, write(testHelp, whole)); err == nil || !strings.Contains(err.Error(), "in no section") {
		t.Errorf("CheckText of a help with --stray in no section: %v", err)
	}
	// fs is every flag but the stray one, each in a section.
	flags := func() *pflag.FlagSet {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		helpFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "stray" {
				fs.AddFlag(f)
			}
		})
		return fs
	}
	fs := flags()
	text := write(testHelp, fs)
	if err := testHelp.CheckText(fs, text); err != nil {
		t.Errorf("CheckText: %v", err)
	}
	// A help written before a default changed: the flag set now says
	// 16000.
	moved := flags()
	if err := moved.Set("port", "16000"); err != nil {
		t.Fatal(err)
	}
	moved.Lookup("port").DefValue = "16000"
	newFlag := flags()
	newFlag.String("later", "", "WHAT\tA flag added after the help was written")
	h := testHelp
	h.Sections = append(append([]HelpSection(nil), testHelp.Sections...), HelpSection{Flags: []HelpFlag{{Name: "gone", Text: "x"}}})
	for _, tc := range []struct {
		name string
		h    Help
		fs   *pflag.FlagSet
		text string
		want string // in the error
	}{
		{"a flag that is not", h, fs, write(h, fs), "--gone"},
		{"not the purpose first", testHelp, fs, "Server\n" + text, "purpose"},
		{"a default left out", testHelp, fs, strings.Replace(text, ", defaults to 15000", "", 1), "--port does not give its default 15000"},
		{"a default that changed", testHelp, moved, text, "--port does not give its default 16000"},
		{"a size's default", testHelp, fs, strings.Replace(text, "defaults to 1G", "defaults to 2G", 1), "--max-file-size does not give its default 1G"},
		{"a default with more after it", testHelp, fs, strings.Replace(text, "defaults to 15000", "defaults to 150000", 1), "--port does not give its default 15000"},
		{"an own default's words left out", testHelp, fs, strings.Replace(text, "defaults to the working directory", "the working directory", 1), "--dir does not say what it defaults to"},
		{"a flag not in the help", testHelp, newFlag, text, "does not list --later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.h.CheckText(tc.fs, tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckText: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
