package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@h1:4222", "nats://alice:xxxxx@h1:4222"},
		{"tls://s3cret@h1:4222", "tls://xxxxx@h1:4222"},
		{"nats://alice:s3cret@h1:bad port", "nats://xxxxx@h1:bad port"},
		{"alice:s3cret@h1:4222", "xxxxx@h1:4222"},
		{"nats://al%ice:s3cret@h1:4222", "nats://xxxxx@h1:4222"},
	} {
		got := redactURL(tc.in)
		if got != tc.want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := redactURLs([]string{"nats://a:s3cret@h1:1", "nats://h2:2"}); got != "nats://a:xxxxx@h1:1,nats://h2:2" {
		t.Errorf("redactURLs = %q", got)
	}
}

// Check's error about a malformed --nats URL shows no password.
func TestCheckRedactsNATSURL(t *testing.T) {
	c := Config{NATS: []string{"nats//alice:s3cret@h1:4222"}, MaxClients: 1}
	err := c.Check()
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Check() = %v", err)
	}
}

func TestDefaultStateDir(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	noHome := func() (string, error) { return "", errors.New("$HOME is not defined") }
	for _, tc := range []struct {
		xdg  string
		home func() (string, error)
		want string // "" for an error
	}{
		{"/state", home, "/state/gochatd/n-1"},
		{"", home, "/home/u/.local/state/gochatd/n-1"},
		{"relative", home, "/home/u/.local/state/gochatd/n-1"},
		{"/state", noHome, "/state/gochatd/n-1"},
		{"", noHome, ""},
	} {
		got, err := defaultStateDir("n/1", func(string) string { return tc.xdg }, tc.home)
		if tc.want == "" {
			if err == nil {
				t.Errorf("xdg %q: %q, want an error", tc.xdg, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("xdg %q: %q, %v; want %q", tc.xdg, got, err, tc.want)
		}
	}
}

// stateDir makes a missing folder for its owner only, and refuses one
// that group or others may write to, or that another user owns.
func TestStateDir(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "a", "b")
	if err := stateDir(fresh); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("made %v, %v; want mode 0700", st.Mode(), err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o770, 0o702, 0o777} {
		if err := os.Chmod(open, mode); err != nil {
			t.Fatal(err)
		}
		if err := stateDir(open); err == nil || !strings.Contains(err.Error(), "group or others may write") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	if err := os.Chmod(open, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := stateDir(open); err != nil {
		t.Errorf("mode 0750: %v", err)
	}
	if os.Getuid() != 0 {
		t.Log("not root: cannot give a folder to another user; the owner check is not tested")
		return
	}
	theirs := filepath.Join(dir, "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 4321, 4321); err != nil {
		t.Fatal(err)
	}
	if err := stateDir(theirs); err == nil || !strings.Contains(err.Error(), "owned by another user") {
		t.Errorf("another user's folder: %v", err)
	}
}
