package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// connect dials the server. With cfg.Extensions it first asks for the
// extensions this client knows (docs/PROTOCOL.md, "Extensions"); a server
// that refuses them closes the connection, and the client dials again and
// speaks the plain protocol. It returns the connection, a Reader that may
// already hold buffered frames, and the features the server accepted.
func (c *client) connect(ctx context.Context) (net.Conn, *protocol.Reader, []string, error) {
	nc, err := c.dial(ctx)
	if err != nil || !c.cfg.Extensions {
		return nc, protocol.NewReader(nc), nil, err
	}
	r := protocol.NewReader(nc)
	features, err := c.hello(nc, r)
	if err == nil {
		return nc, r, features, nil
	}
	c.log.printf("client: server declined extensions (%v); using the plain protocol", err)
	nc.Close()
	nc, err = c.dial(ctx)
	return nc, protocol.NewReader(nc), nil, err
}

func (c *client) dial(ctx context.Context) (net.Conn, error) {
	var d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{Timeout: c.cfg.ConnectTimeout}
	if c.cfg.TLS != nil {
		d = &tls.Dialer{NetDialer: &net.Dialer{Timeout: c.cfg.ConnectTimeout}, Config: c.cfg.TLS}
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	return d.DialContext(dctx, "tcp", c.cfg.Addr)
}

// hello sends ext_hello and reads the answer.
func (c *client) hello(nc net.Conn, r *protocol.Reader) ([]string, error) {
	if _, err := nc.Write(protocol.AppendExtHello(nil, []string{protocol.FeatureChunkedFile})); err != nil {
		return nil, err
	}
	nc.SetReadDeadline(time.Now().Add(c.cfg.ConnectTimeout))
	defer nc.SetReadDeadline(time.Time{})
	h, err := r.ReadHeader()
	if err != nil {
		return nil, err
	}
	if h.Type != protocol.ExtHello || h.Length > protocol.MaxExtHello {
		return nil, fmt.Errorf("answered %s", h.Name)
	}
	p, err := r.ReadPayload(nil)
	if err != nil {
		return nil, err
	}
	return protocol.ParseFeatures(p)
}

// incoming is a file arriving in file_chunk frames.
type incoming struct {
	sender    string
	size, got int64
	d         *download // nil for a refused file, whose chunks are skipped
}

// fileFrame handles a file_begin, file_chunk, file_end or file_abort frame
// whose payload is p. It returns an error only if the session must end.
func (c *client) fileFrame(t protocol.Type, p []byte) {
	switch t {
	case protocol.FileBegin:
		id, sender, filename, size, err := protocol.ParseFileBegin(p)
		if err != nil {
			c.log.printf("client: refusing file: %v", err)
			return
		}
		if _, dup := c.files[id]; dup {
			c.log.printf("client: ignoring repeated file_begin %d", id)
			return
		}
		// A refused file is still tracked, to skip its chunks.
		c.files[id] = &incoming{sender: sender, size: size, d: c.startDownload(sender, filename, size)}
	case protocol.FileChunk:
		id, data, err := protocol.ParseChunk(p)
		in := c.files[id]
		if err != nil || in == nil {
			c.log.printf("client: ignoring file_chunk for no file (%v)", err)
			return
		}
		in.got += int64(len(data))
		if in.d != nil {
			in.d.Write(data)
		}
	case protocol.FileEnd, protocol.FileAbort:
		id, err := protocol.ParseFileID(p)
		in := c.files[id]
		if err != nil || in == nil {
			c.log.printf("client: ignoring %s for no file (%v)", t, err)
			return
		}
		delete(c.files, id)
		if in.sender == c.cfg.User {
			defer c.gotReply()
		}
		switch {
		case in.d == nil:
		case t == protocol.FileAbort:
			in.d.discard()
			c.log.printf("client: %s stopped sending %q; nothing saved", in.sender, in.d.filename)
		case in.got != in.size:
			c.finishDownload(in.d, fmt.Errorf("got %d bytes of %d", in.got, in.size))
		default:
			c.finishDownload(in.d, nil)
		}
	}
}

// dropFiles removes the temporary files of transfers cut short.
func (c *client) dropFiles() {
	for id, in := range c.files {
		if in.d != nil {
			in.d.discard()
		}
		delete(c.files, id)
	}
}

// errNotChunked is the error for file_* frames on a plain session.
var errNotChunked = errors.New("chunked files not negotiated")
