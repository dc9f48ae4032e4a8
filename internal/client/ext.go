package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// connect dials the server. With cfg.Extensions it first asks for the
// extensions this client knows (docs/PROTOCOL.md, "Extensions"); a server
// that knows only the contract answers err_unknown_message and closes, and
// the client dials again and speaks the plain protocol. It returns the
// connection, a Reader that may already hold buffered frames, and the
// features the server accepted; errSpeaksTLS if the server closed without
// a word and answers a TLS handshake.
func (c *client) connect(ctx context.Context) (net.Conn, *protocol.Reader, []string, error) {
	nc, err := c.dial(ctx)
	if err != nil || !c.cfg.Extensions {
		return nc, newConnReader(nc), nil, err
	}
	r := newConnReader(nc)
	features, err := c.hello(ctx, nc, r)
	if err == nil {
		return nc, r, features, nil
	}
	nc.Close()
	if ctx.Err() != nil { // a signal while waiting for the answer
		return nil, nil, nil, ctx.Err()
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		// A silent server, not a TLS one: a TLS server takes the
		// ext_hello for a broken handshake and closes at once.
		c.log.printf("client: the server did not answer ext_hello within %v; using the plain protocol", c.helloTimeout())
	case !errors.Is(err, errDeclined) && c.cfg.TLS == nil && c.speaksTLS(ctx):
		return nil, nil, nil, errSpeaksTLS
	default:
		c.log.printf("client: server declined extensions (%v); using the plain protocol", err)
	}
	nc, err = c.dial(ctx)
	return nc, newConnReader(nc), nil, err
}

// recvBufSize is the buffer of the Reader of the connection. Payloads
// longer than it (a file's content: file_chunk frames of 64 KiB, a
// forward_file) are read straight into their destination, the buffers of
// the savers, past it: with a 64 KiB buffer nearly every byte of a file
// was copied through it, 13% of a receiving client's CPU time (perf, a
// 1 GiB file, issue 19 part 3), and a small one costs a header a read at
// most.
const recvBufSize = 4 << 10

// newConnReader returns the Reader of the connection nc.
func newConnReader(nc net.Conn) *protocol.Reader { return protocol.NewReaderSize(nc, recvBufSize) }

// features returns the extensions the client asks for. A front end that
// completes names (a Users hook) gets the names online at join and the
// joins and leaves after it: so Tab knows who is online before the user
// has run list (issue 23 item 9), and the server prints nothing for it,
// where a request_users_list would have printed a line. Piped, nothing
// would use them, and a wave of scripted clients costs the server no
// lists.
func (c *client) features() []string {
	f := []string{protocol.FeatureChunkedFile, protocol.FeatureFileUpload, protocol.FeatureNotOnline, protocol.FeatureTryAgain}
	if c.cfg.Presence || c.cfg.Hooks.Users != nil {
		f = append(f, protocol.FeaturePresence)
	}
	if c.cfg.Hooks.Users != nil {
		f = append(f, protocol.FeatureOnline)
	}
	if c.cfg.Heartbeat > 0 {
		f = append(f, protocol.FeatureHeartbeat)
	}
	if !c.cfg.NoResume {
		f = append(f, protocol.FeatureResume, protocol.FeatureTaken)
		if len(c.cfg.Others) > 0 {
			// Other addresses: other nodes of a cluster, where a
			// resume needs the cursor (docs/SESSIONS.md).
			f = append(f, protocol.FeatureCursor)
		}
	}
	return f
}

// errDeclined is the error of hello for a server that does not know
// ext_hello.
var errDeclined = errors.New("answered err_unknown_message")

// errSpeaksTLS is the error of connect for a server that speaks TLS to a
// client that does not.
var errSpeaksTLS = errors.New("the server speaks TLS")

// speaksTLS reports whether the server answers a TLS handshake. It is
// asked when a server closed the connection without a word, as a TLS
// server does when it gets a join instead of a handshake.
func (c *client) speaksTLS(ctx context.Context) bool {
	// Only to recognise TLS: nothing is sent over it, so the server's
	// certificate does not matter.
	cfg := &tls.Config{InsecureSkipVerify: true}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: tlsProbeWait}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, tlsProbeWait)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		var alert tls.AlertError
		return errors.As(err, &alert) // it answered, in TLS
	}
	conn.Close()
	return true
}

// tlsProbeWait bounds the TLS handshake of speaksTLS.
const tlsProbeWait = 2 * time.Second

// tlsHint says on stderr that the server speaks TLS.
func (c *client) tlsHint() {
	c.log.printf("client: the server at %s seems to speak TLS: start the client with --tls (and --tls-ca FILE if its certificate is self-signed)", c.cfg.Addr)
}

// A refused connection is tried again every refusedPause for up to
// refusedRetry: the server may be starting. A course harness starts the
// clients 10 ms after the server, and through the Python launchers
// (course/) each side first waits ~35 ms for its interpreter, so a server
// that opens its port first thing may still open it after a client's
// first try (issue 19: 1 start in 5 on a loaded 2-core machine). Nothing
// but a refusal is tried again, and a server that is not there is still
// reported, a second later.
const (
	refusedRetry = time.Second
	refusedPause = 10 * time.Millisecond
)

// dial opens a connection to the server, in TLS if configured, trying a
// refused connection again for a while.
func (c *client) dial(ctx context.Context) (net.Conn, error) {
	giveUp := time.Now().Add(min(refusedRetry, c.cfg.ConnectTimeout))
	for {
		nc, err := c.dialOnce(ctx)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().Add(refusedPause).After(giveUp) {
			return nc, err
		}
		t := time.NewTimer(refusedPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// dialOnce opens a connection to the server, in TLS if configured.
func (c *client) dialOnce(ctx context.Context) (net.Conn, error) {
	return c.dialAddr(ctx, c.cfg.Addr, c.cfg.TLS)
}

// dialAddr opens a connection to addr, in TLS if tlsCfg is not nil.
func (c *client) dialAddr(ctx context.Context, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	var d interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	} = &net.Dialer{Timeout: c.cfg.ConnectTimeout}
	if tlsCfg != nil {
		d = &tls.Dialer{NetDialer: &net.Dialer{Timeout: c.cfg.ConnectTimeout}, Config: tlsCfg}
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil || c.cfg.Heartbeat <= 0 || !c.cfg.Extensions {
		return nc, err
	}
	return &hbConn{Conn: nc, hb: &c.hb}, nil // heartbeat.go
}

// helloWait bounds the wait for the answer to ext_hello. A server answers
// in milliseconds (it is the first frame it reads), so a longer silence
// means a server that will never answer; waiting the whole connect timeout
// (10 s) before falling back to the contract cost every user of such a
// server 10 s (issue 19, part 6).
const helloWait = 2 * time.Second

// helloTimeout returns the wait for the answer to ext_hello: helloWait,
// or the connect timeout if that is shorter.
func (c *client) helloTimeout() time.Duration {
	return min(c.helloWait, c.cfg.ConnectTimeout)
}

// hello sends ext_hello and reads the answer, for at most helloTimeout.
func (c *client) hello(ctx context.Context, nc net.Conn, r *protocol.Reader) ([]string, error) {
	nc.SetReadDeadline(time.Now().Add(c.helloTimeout()))
	defer nc.SetReadDeadline(time.Time{})
	// A signal ends the wait for a server that does not answer (set
	// after the deadline above, which would put it off).
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	if _, err := nc.Write(protocol.AppendExtHello(nil, c.features())); err != nil {
		return nil, err
	}
	h, err := r.ReadHeader()
	if err != nil {
		return nil, err
	}
	if h.Type == protocol.ErrUnknownMessage {
		return nil, errDeclined
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

// errTryAgain is the outcome of awaitJoin for a join the server could not
// decide (try_again): after is the wait it asked for.
type errTryAgain struct{ after time.Duration }

func (e errTryAgain) Error() string { return fmt.Sprintf("try again in %v", e.after) }

// joinNotice is how long a join may take before the client says on
// stderr that it waits: a cluster takes the joins of a storm in turn
// (docs/CLUSTER.md, "Join storms"), and a person at a terminal should
// know why nothing happens.
const joinNotice = 2 * time.Second

// awaitJoin reads the server's answer to the join of a session that
// negotiated try-again: nil once admitted (join_ok), errTryAgain when the
// server could not decide it now, what follows "disconnected: " in the
// contract's line for a refusal (refused), or the error that ended the
// stream.
func (c *client) awaitJoin(ctx context.Context, nc net.Conn, r *protocol.Reader) (refused string, err error) {
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer stop()
	notice := time.AfterFunc(joinNotice, func() {
		c.log.printf("client: waiting for the server to admit %s (a busy cluster takes joins in turn)", c.cfg.User)
	})
	defer notice.Stop()
	for {
		h, err := r.ReadHeader()
		if err != nil {
			return "", err
		}
		c.heard.Store(true)
		if h.Length > c.limits.MaxPayload(protocol.ToClient, h.Type) {
			return "", fmt.Errorf("%s of %d bytes", h.Name, h.Length)
		}
		p, err := r.ReadPayload(nil)
		if err != nil {
			return "", err
		}
		switch h.Type {
		case protocol.JoinOK:
			return "", nil
		case protocol.TryAgain:
			d, err := protocol.ParseTryAgain(p)
			if err != nil {
				d = time.Second
			}
			return "", errTryAgain{d}
		case protocol.ErrServerFull:
			return "server full", nil
		case protocol.ErrUsernameUnavailable:
			return "username not available", nil
		case protocol.ErrUnknownMessage:
			return "server received an unknown command", nil
		}
		c.log.printf("client: ignoring %s before the join's answer", h.Name)
	}
}

// Waits between joins the server could not decide: the server's, or
// twice the last, whichever is longer, up to maxRetryWait, each with a
// random part of up to half, so that the users of a node cut off do not
// all come back at the same instant.
const maxRetryWait = 30 * time.Second

func retryWait(asked, last time.Duration) time.Duration {
	d := min(max(asked, 2*last, 500*time.Millisecond), maxRetryWait)
	return d + rand.N(d/2+1)
}
