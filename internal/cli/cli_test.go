package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// sizeCase is an input of a size flag value and what it must give.
type sizeCase struct {
	in   string
	want int64
	ok   bool
}

// checkSizes checks parse, named what, on each of cases.
func checkSizes(t *testing.T, what string, parse func(string) (int64, error), cases []sizeCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s(%q) = %d, %v; want %d, ok %v", what, tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	checkSizes(t, "ParseSize", ParseSize, []sizeCase{
		{"1", 1, true},
		{"1048576", 1 << 20, true},
		{"64K", 64 << 10, true},
		{"64KiB", 64 << 10, true},
		{"8M", 8 << 20, true},
		{"8MiB", 8 << 20, true},
		{"1G", 1 << 30, true},
		{"2GiB", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"100B", 100, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"G", 0, false},
		{"1.5G", 0, false},
		{"abc", 0, false},
		{"99999999999T", 0, false},
	})
}

func TestLimit(t *testing.T) {
	set := func(v string) (int64, error) {
		var l Limit
		err := l.Set(v)
		return int64(l), err
	}
	checkSizes(t, "Limit.Set", set, []sizeCase{
		{"0", 0, true},
		{" 0 ", 0, true},
		{"16M", 16 << 20, true},
		{"00", 0, false},
		{"-1", 0, false},
		{"x", 0, false},
	})
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		done     bool
		port     int
		helpOut  bool
		errorOut bool
	}{
		{args: nil, port: 15000},
		{args: []string{"-p", "9000"}, port: 9000},
		{args: []string{"-p9000"}, port: 9000},
		{args: []string{"--port=9000"}, port: 9000},
		{args: []string{"--port", "9000"}, port: 9000},
		{args: []string{"-p", "015000"}, port: 15000}, // base 10, as Python's int() reads it: not octal
		{args: []string{"-p", "40_001"}, port: 40001},
		{args: []string{"-p", " +9000 "}, port: 9000},
		{args: []string{"-p", "0x10"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"-p", "1__0"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"-p", "_10"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"-p", "--9"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"-p", ""}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"-h"}, code: 0, done: true, port: 15000, helpOut: true},
		{args: []string{"--help"}, code: 0, done: true, port: 15000, helpOut: true},
		{args: []string{"-p", "abc"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"-p", "70000"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"stray"}, code: 1, done: true, helpOut: true, errorOut: true},
		{args: []string{"--nope"}, code: 1, done: true, helpOut: true, errorOut: true},
	} {
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		port := new(int)
		IntVarP(fs, port, "port", "p", 15000)
		var stdout, stderr bytes.Buffer
		code, done := Parse(fs, tc.args, func(w io.Writer) { w.Write([]byte("HELP\n")) }, &stdout, &stderr, func() error { return CheckPort(*port, 1) })
		if code != tc.code || done != tc.done {
			t.Errorf("%v: code %d done %v, want %d %v", tc.args, code, done, tc.code, tc.done)
		}
		if !tc.done && *port != tc.port {
			t.Errorf("%v: port %d, want %d", tc.args, *port, tc.port)
		}
		if got := stdout.String() == "HELP\n"; got != tc.helpOut {
			t.Errorf("%v: help on stdout %v, want %v (%q)", tc.args, got, tc.helpOut, stdout.String())
		}
		if got := stderr.Len() > 0; got != tc.errorOut {
			t.Errorf("%v: error on stderr %v, want %v", tc.args, got, tc.errorOut)
		}
	}
}

func TestLogger(t *testing.T) {
	var b bytes.Buffer
	l, err := Logger(&b, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown", "k", 1)
	if s := b.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"msg":"shown"`) {
		t.Errorf("json warn logger wrote %q", s)
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"text", "loud"}} {
		if _, err := Logger(&b, bad[0], bad[1]); err == nil {
			t.Errorf("Logger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestClientTLS(t *testing.T) {
	dir := t.TempDir()
	if _, err := ClientTLS("localhost", filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing CA file accepted")
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o644)
	if _, err := ClientTLS("localhost", junk); err == nil {
		t.Error("CA file without a certificate accepted")
	}
	cfg, err := ClientTLS("example.org", "")
	if err != nil || cfg.ServerName != "example.org" || cfg.RootCAs != nil {
		t.Errorf("system roots config: %+v, %v", cfg, err)
	}
}
