package chattest

import (
	"os"
	"testing"
)

// DirNames returns the names of the files in dir, in order, or fails the
// test: what a test checks a download or spool folder with.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
