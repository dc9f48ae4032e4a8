package client

import (
	"context"
	"crypto/tls"
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

// dial opens a connection to the server, in TLS if configured.
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
	if h.Type != protocol.ExtHello || h.Length > c.limits.MaxPayload(protocol.ToClient, h.Type) {
		return nil, fmt.Errorf("answered %s", h.Name)
	}
	p, err := r.ReadPayload(nil)
	if err != nil {
		return nil, err
	}
	return protocol.ParseFeatures(p)
}
