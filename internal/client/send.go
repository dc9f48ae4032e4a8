package client

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/gochat/chat/internal/protocol"
)

// sendMessage sends text to the named users.
func (c *client) sendMessage(names []string, text string) {
	if slices.Contains(names, c.cfg.User) {
		c.expectReply()
	}
	c.w.Write(protocol.AppendMessage(nil, protocol.SendMessage, names, []byte(text)))
	c.flush()
}

// requestList asks for the list of users.
func (c *client) requestList() {
	c.expectReply()
	c.w.Write(protocol.AppendEmpty(nil, protocol.RequestUsersList))
	c.flush()
}

// flush sends what is buffered, reporting a failure on stderr unless the
// session is quitting.
func (c *client) flush() {
	if err := c.w.Flush(); err != nil && !c.quitting.Load() {
		c.log.printf("client: sending failed: %v", err)
	}
}

// sendFile streams the file at path to the named users.
func (c *client) sendFile(names []string, path string) {
	f, err := os.Open(path)
	if err != nil {
		c.log.printf("file: cannot read %s: %v", path, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.log.printf("file: cannot read %s: %v", path, err)
		return
	}
	if !st.Mode().IsRegular() {
		c.log.printf("file: cannot send %s: not a regular file", path)
		return
	}
	if st.Size() > c.cfg.MaxFileSize {
		c.log.printf("file: cannot send %s: %d bytes is more than the limit of %d", path, st.Size(), c.cfg.MaxFileSize)
		return
	}
	base := filepath.Base(path)
	if err := protocol.ValidFilename(base); err != nil {
		c.log.printf("file: cannot send %s: %v", path, err)
		return
	}
	size := st.Size()
	if slices.Contains(names, c.cfg.User) {
		c.expectReply()
	}
	c.w.Write(protocol.AppendFileHead(nil, protocol.SendFile, names, base, size))
	p := c.progress("send", base, size)
	n, err := io.Copy(c.w, io.TeeReader(io.LimitReader(f, size), p))
	if err == nil && n < size {
		err = fmt.Errorf("file shrank to %d bytes while being sent", n)
	}
	if err != nil {
		// The frame's length is already on its way: fill it so the
		// stream stays in step, and tell the user.
		c.log.printf("file: %s: %v; the recipients get a damaged copy", path, err)
		io.CopyN(c.w, zeroReader{}, size-n)
	}
	p.finish()
	c.flush()
}

// zeroReader reads an endless run of zero bytes.
type zeroReader struct{}

// Read fills p with zero bytes.
func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
