// Package cli holds what the two programs' command lines share: flag
// parsing with the exit behaviour of PROTOCOL.md section 1, size values,
// port checks and logger setup.
package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Parse parses args into fs. It returns done true when the program must
// exit at once with the returned code: 0 after printing help for -h, 1
// after printing the error on stderr and help on stdout. check, if not nil,
// validates the parsed values.
func Parse(fs *pflag.FlagSet, args []string, help func(io.Writer), stdout, stderr io.Writer, check func() error) (code int, done bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var showHelp bool
	if fs.Lookup("help") == nil {
		fs.BoolVarP(&showHelp, "help", "h", false, "print this help")
	}
	err := fs.Parse(args)
	if errors.Is(err, pflag.ErrHelp) || err == nil && showHelp {
		help(stdout)
		return 0, true
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		help(stdout)
		return 1, true
	}
	return 0, false
}

// CheckPort returns an error unless port is in [lowest, 65535].
func CheckPort(port, lowest int) error {
	if port < lowest || port > 65535 {
		return fmt.Errorf("port %d out of range [%d, 65535]", port, lowest)
	}
	return nil
}

// Int is a whole number flag value read in base 10 the way the handout's
// Python int() reads it: "015000" is 15000 (not octal), "40_001" is
// 40001, a sign and surrounding spaces are allowed, "0x10" is an error.
type Int int

// IntVarP defines an Int flag with the given default.
func IntVarP(fs *pflag.FlagSet, p *int, name, short string, value int) {
	*p = value
	fs.VarP((*Int)(p), name, short, "")
}

// String implements pflag.Value.
func (n *Int) String() string { return strconv.Itoa(int(*n)) }

// Type implements pflag.Value.
func (n *Int) Type() string { return "int" }

// Set implements pflag.Value.
func (n *Int) Set(v string) error {
	i, err := ParseInt(v)
	if err != nil {
		return err
	}
	*n = Int(i)
	return nil
}

// ParseInt parses a whole number in base 10 as Int.Set describes.
func ParseInt(v string) (int, error) {
	t := strings.TrimSpace(v)
	digits := strings.TrimLeft(t, "+-")
	if len(t)-len(digits) > 1 || !decimalDigits(digits) {
		return 0, fmt.Errorf("invalid number %q", v)
	}
	n, err := strconv.ParseInt(t[:len(t)-len(digits)]+strings.ReplaceAll(digits, "_", ""), 10, strconv.IntSize)
	if err != nil {
		return 0, fmt.Errorf("invalid number %q", v)
	}
	return int(n), nil
}

// decimalDigits reports whether s is digits with single underscores
// between them.
func decimalDigits(s string) bool {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Size is a byte count flag value that accepts a plain number or one with
// a binary unit suffix: 512K, 8M, 1G (or KiB, MiB, GiB).
type Size int64

// String implements pflag.Value.
func (s *Size) String() string { return strconv.FormatInt(int64(*s), 10) }

// Type implements pflag.Value.
func (s *Size) Type() string { return "bytes" }

// Set implements pflag.Value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// Limit is a Size flag value that also takes 0, which turns the limit off.
type Limit int64

// String implements pflag.Value.
func (l *Limit) String() string { return (*Size)(l).String() }

// Type implements pflag.Value: a Size's, which the help shows with its
// unit.
func (l *Limit) Type() string { return (*Size)(l).Type() }

// Set implements pflag.Value.
func (l *Limit) Set(v string) error {
	if strings.TrimSpace(v) == "0" {
		*l = 0
		return nil
	}
	return (*Size)(l).Set(v)
}

// ParseSize parses a byte count like "1048576", "64K", "8MiB" or "1G".
func ParseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	shift := 0
	for _, u := range []struct {
		suffix string
		shift  int
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"K", 10}, {"M", 20}, {"G", 30}, {"T", 40}, {"B", 0}} {
		if strings.HasSuffix(t, u.suffix) {
			t, shift = strings.TrimSuffix(t, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n << shift, nil
}

// Logger returns a slog.Logger writing to w in format "text" or "json" at
// level ("debug", "info", "warn", "error").
func Logger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid log level %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid log format %q", format)
}

// ClientTLS returns a client TLS configuration for talking to host. With
// caFile set, only certificates signed by the PEM certificates in it (or
// equal to one of them, for a self-signed certificate) are trusted;
// otherwise the system's roots are.
func ClientTLS(host, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in %s", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
