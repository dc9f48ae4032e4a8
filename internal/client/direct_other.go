//go:build !linux

package client

import (
	"errors"
	"os"
)

// setDirect cannot turn O_DIRECT on where it does not exist: files are
// written buffered.
func setDirect(f *os.File, on bool) error {
	if on {
		return errors.New("no O_DIRECT on this platform")
	}
	return nil
}

// mapBlock returns n bytes for content: without O_DIRECT, any will do.
func mapBlock(n int) ([]byte, error) { return make([]byte, n), nil }

// writeFile writes bufs to f in order.
func writeFile(f *os.File, bufs [][]byte) (int, error) {
	total := 0
	for _, b := range bufs {
		n, err := f.Write(b)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
