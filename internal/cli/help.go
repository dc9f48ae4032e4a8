package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Help is a program's help text, made from its flag definitions so that
// the two cannot drift apart (issue 23 item 20: the help opened with the
// handout's raw lines, unaligned with the rest, and never said what the
// program is). A flag's help is "METAVAR\tdescription" (or just the
// description, for a flag that takes no value); its default, unless
// the description says "defaults to" itself or the value is empty or
// false, is added as ", defaults to X", sizes with their unit (1G).
type Help struct {
	// Purpose says what the program is: the help's first lines.
	Purpose string
	// Usage is the synopsis line, without "Usage: ".
	Usage string
	// Sections list the flags, in order, under their titles (the first
	// title may be empty). A flag in no section is listed under "Other
	// options" with its usage string, so none is ever left out.
	Sections []HelpSection
	// Footer, if not empty, ends the help.
	Footer string
}

// HelpSection is a titled group of flags in a Help.
type HelpSection struct {
	Title string
	Flags []HelpFlag
}

// HelpFlag is a flag's entry in a Help: its name and its help (empty: the
// flag's usage string).
type HelpFlag struct{ Name, Text string }

// Help's layout: descriptions start at column helpIndent, lines end by
// column helpWidth.
const (
	helpIndent = 30
	helpWidth  = 79
)

// Write writes the help for the flags of fs on w.
func (h Help) Write(w io.Writer, fs *pflag.FlagSet) {
	var b strings.Builder
	b.WriteString(wrap(h.Purpose, "", helpWidth))
	fmt.Fprintf(&b, "\nUsage: %s\n", h.Usage)
	listed := map[string]bool{}
	sections := h.Sections
	var other []HelpFlag
	fs.VisitAll(func(f *pflag.Flag) {
		for _, s := range sections {
			for _, hf := range s.Flags {
				if hf.Name == f.Name {
					return
				}
			}
		}
		other = append(other, HelpFlag{Name: f.Name})
	})
	if len(other) > 0 {
		sections = append(sections[:len(sections):len(sections)], HelpSection{"Other options", other})
	}
	for _, s := range sections {
		b.WriteString("\n")
		if s.Title != "" {
			b.WriteString(wrap(s.Title+":", "", helpWidth))
		}
		for _, hf := range s.Flags {
			f := fs.Lookup(hf.Name)
			if f == nil || listed[hf.Name] {
				continue
			}
			listed[hf.Name] = true
			if hf.Text == "" {
				hf.Text = f.Usage
			}
			b.WriteString(flagHelp(f, hf.Text))
		}
	}
	if h.Footer != "" {
		b.WriteString("\n" + wrap(h.Footer, "", helpWidth))
	}
	io.WriteString(w, b.String())
}

// flagHelp returns the lines of f, with help, in a Help.
func flagHelp(f *pflag.Flag, help string) string {
	spec := "      --" + f.Name
	if f.Shorthand != "" {
		spec = "  -" + f.Shorthand + ", --" + f.Name
	}
	metavar, text, ok := strings.Cut(help, "\t")
	if ok {
		spec += "=" + metavar
	} else {
		text = help
	}
	if d := helpDefault(f); d != "" && !strings.Contains(text, "defaults to") {
		text += ", defaults to " + d
	}
	indent := strings.Repeat(" ", helpIndent)
	if len(spec) >= helpIndent-1 {
		return spec + "\n" + wrap(text, indent, helpWidth)
	}
	return spec + strings.Repeat(" ", helpIndent-len(spec)) + strings.TrimPrefix(wrap(text, indent, helpWidth), indent)
}

// helpDefault returns f's default as the help shows it, or "" for none.
func helpDefault(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "false", "[]":
		return ""
	}
	if f.Value.Type() == "bytes" {
		if n, err := strconv.ParseInt(f.DefValue, 10, 64); err == nil {
			return FormatSize(n)
		}
	}
	return f.DefValue
}

// FormatSize returns n as the size flags take it: with the largest
// binary unit that divides it (1G, 8M, 1K), else in bytes.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// wrap returns text in lines of at most width columns (a longer word
// stands alone), each starting with indent, paragraphs ("\n\n") kept.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	for i, para := range strings.Split(text, "\n\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		line := indent
		for _, word := range strings.Fields(para) {
			if len(line) > len(indent) && len(line)+1+len(word) > width {
				b.WriteString(line + "\n")
				line = indent
			}
			if len(line) > len(indent) {
				line += " "
			}
			line += word
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// Check returns an error if h names a flag fs lacks or names one twice, or
// if a flag of fs has no help: the tests of each program call it.
func (h Help) Check(fs *pflag.FlagSet) error {
	seen := map[string]bool{}
	for _, s := range h.Sections {
		for _, hf := range s.Flags {
			f := fs.Lookup(hf.Name)
			switch {
			case f == nil:
				return fmt.Errorf("the help lists --%s, which is no flag", hf.Name)
			case seen[hf.Name]:
				return fmt.Errorf("the help lists --%s twice", hf.Name)
			case hf.Text == "" && f.Usage == "":
				return fmt.Errorf("--%s has no help", hf.Name)
			}
			seen[hf.Name] = true
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if !seen[f.Name] && f.Usage == "" && err == nil {
			err = fmt.Errorf("--%s has no help", f.Name)
		}
	})
	return err
}

// CheckText returns an error unless text, a program's help as h wrote it
// for fs, opens with the program's purpose, has an entry for every flag of
// fs (VisitAll) in one of h's sections (a flag in none would have no help
// of its own) with the flag's default in it, and has no line wider than
// helpWidth: the programs' tests call it on their -h output. A flag whose
// help in h says "defaults to" itself (a default that is no flag value:
// "the working directory") is checked for those words, not for its value.
func (h Help) CheckText(fs *pflag.FlagSet, text string) error {
	if !strings.HasPrefix(text, strings.Fields(h.Purpose)[0]+" ") {
		return fmt.Errorf("the help does not open with the program's purpose")
	}
	if strings.Contains(text, "\nOther options:\n") {
		return fmt.Errorf("the help lists flags in no section: every flag needs a place and a text")
	}
	own := map[string]string{} // the help h gives each flag
	for _, s := range h.Sections {
		for _, hf := range s.Flags {
			if fs.Lookup(hf.Name) == nil {
				return fmt.Errorf("the help lists --%s, which is no flag", hf.Name)
			}
			own[hf.Name] = hf.Text
		}
	}
	entries := helpEntries(text)
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		entry, ok := entries[f.Name]
		switch {
		case !ok:
			err = fmt.Errorf("the help does not list --%s", f.Name)
		case strings.Contains(own[f.Name], "defaults to"):
			if !strings.Contains(entry, "defaults to") {
				err = fmt.Errorf("the help of --%s does not say what it defaults to: %q", f.Name, entry)
			}
		case helpDefault(f) != "" && !strings.HasSuffix(entry, ", defaults to "+helpDefault(f)):
			err = fmt.Errorf("the help of --%s does not give its default %s: %q", f.Name, helpDefault(f), entry)
		}
	})
	if err != nil {
		return err
	}
	for line := range strings.Lines(text) {
		if len(strings.TrimSuffix(line, "\n")) > helpWidth {
			return fmt.Errorf("help line wider than %d columns: %q", helpWidth, line)
		}
	}
	return nil
}

// helpEntries returns the flags' entries in text, a help Write wrote, by
// flag name: each the flag's line and the lines of its description after
// it, joined with single spaces.
func helpEntries(text string) map[string]string {
	entries := map[string]string{}
	name := ""
	indent := strings.Repeat(" ", helpIndent)
	for line := range strings.Lines(text) {
		spec, isFlag := strings.CutPrefix(line, "      --")
		if !isFlag && strings.HasPrefix(line, "  -") && len(line) > 8 && line[4:8] == ", --" {
			spec, isFlag = line[8:], true
		}
		switch {
		case isFlag:
			name = strings.FieldsFunc(spec, func(r rune) bool { return r == '=' || r == ' ' || r == '\n' })[0]
			entries[name] = strings.Join(strings.Fields(spec), " ")
		case name != "" && strings.HasPrefix(line, indent):
			entries[name] += " " + strings.Join(strings.Fields(line), " ")
		default:
			name = ""
		}
	}
	return entries
}
