package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Reconnecting and resuming a session (the resume extension, issue 22;
// docs/PROTOCOL.md, "resume"; docs/CLIENT.md, "A lost connection"). A
// server that grants resume sends a session frame after the join; the
// client then counts the counted frames it receives and acknowledges them
// now and then (received). When the connection is lost (not refused, not
// quit), the receiver reconnects, to the same address first and then the
// others, with jittered backoff, and resumes: the server replays what the
// client did not have, and says how many frames it could not keep.
// Writers wait meanwhile (wmu is held), so lines typed during it are sent
// after the resume.

const (
	// ackEvery is how many counted frames the client lets come before it
	// acknowledges them at once.
	ackEvery = 64
	// ackDelay is the longest a counted frame waits for its
	// acknowledgement: what a session keeps while connected is the
	// frames of about this long.
	ackDelay = 200 * time.Millisecond
	// backoffFirst and backoffMax bound the pause between two rounds of
	// reconnecting (jittered by up to half).
	backoffFirst = 50 * time.Millisecond
	backoffMax   = time.Second
	// resumeDialWait bounds one connection attempt while reconnecting, so
	// that an address that does not answer holds the others up little.
	resumeDialWait = 2 * time.Second
)

// resumeState is the client's side of the resume extension. Fields are
// owned by the receiver unless marked otherwise.
type resumeState struct {
	granted bool // the server accepted resume; set before the receiver starts
	have    bool // a session frame came: counting, acks and resumes are on
	token   protocol.Token
	window  time.Duration
	ctx     context.Context // Run's: cancelled, the session quits; set before the receiver starts
	addr    string          // the address of the connection in use
	pending bool            // the last frame, counted, was being skipped: it counts once the next header is read

	count atomic.Uint64 // counted frames received (read by the acker)

	// The last cursor read whole, and the counted frames read after it
	// (a cluster's node sends cursors to a client that asked: a resume on
	// another node names every node's position with them). Owned by the
	// receiver, read by reconnect, which runs on its goroutine.
	cursor  []byte
	cursorJ uint64
	cursors bool           // the server granted cursor; set before the receiver starts
	sig     chan struct{}  // wakes the acker
	stop    chan struct{}  // closed to end the acker
	wg      sync.WaitGroup // the acker
}

// swapConn is the connection of a session that may resume: it stands for
// whichever connection is in use, so that the writers, the quit and the
// signals keep one net.Conn across reconnections.
type swapConn struct {
	net.Conn // unused: the methods below stand for it

	mu     sync.Mutex
	cur    net.Conn // guarded by mu
	closed bool     // Close was called: no connection is taken any more; guarded by mu
}

func (s *swapConn) conn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *swapConn) Read(p []byte) (int, error)         { return s.conn().Read(p) }
func (s *swapConn) Write(p []byte) (int, error)        { return s.conn().Write(p) }
func (s *swapConn) LocalAddr() net.Addr                { return s.conn().LocalAddr() }
func (s *swapConn) RemoteAddr() net.Addr               { return s.conn().RemoteAddr() }
func (s *swapConn) SetDeadline(t time.Time) error      { return s.conn().SetDeadline(t) }
func (s *swapConn) SetReadDeadline(t time.Time) error  { return s.conn().SetReadDeadline(t) }
func (s *swapConn) SetWriteDeadline(t time.Time) error { return s.conn().SetWriteDeadline(t) }

// CloseWrite shuts the writing side of the connection in use, if it can.
func (s *swapConn) CloseWrite() error {
	if cw, ok := s.conn().(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection in use, and any taken after.
func (s *swapConn) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.cur.Close()
}

// cut closes the connection in use, which was lost, so that a write
// blocked on it fails at once; a new one may be swapped in.
func (s *swapConn) cut() {
	s.conn().Close()
}

// swap makes nc the connection in use. It returns false (and closes nc)
// if the session was closed meanwhile.
func (s *swapConn) swap(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return false
	}
	s.cur = nc
	return true
}

// useConn returns the connection the session writes to: nc itself, or a
// swapConn over it when the server granted resume.
func (c *client) useConn(nc net.Conn, features []string) net.Conn {
	if !slices.Contains(features, protocol.FeatureResume) {
		return nc
	}
	c.res.granted = true
	c.res.cursors = slices.Contains(features, protocol.FeatureCursor)
	c.res.addr = c.cfg.Addr
	if slices.Contains(features, protocol.FeatureTaken) {
		c.sent.init()
	}
	return &swapConn{cur: nc}
}

// sessionFrame takes the session frame (payload p): from now on the
// counted frames are counted and acknowledged, and a lost connection is
// resumed.
func (c *client) sessionFrame(p []byte) {
	rs := &c.res
	if !rs.granted || rs.have {
		c.log.printf("client: ignoring session frame: resume not negotiated, or repeated")
		return
	}
	token, window, err := protocol.ParseSession(p)
	if err != nil {
		c.log.printf("client: ignoring malformed session: %v", err)
		return
	}
	rs.token, rs.window, rs.have = token, time.Duration(min(window, 1<<40))*time.Millisecond, true
	rs.sig, rs.stop = make(chan struct{}, 1), make(chan struct{})
	rs.wg.Add(1)
	go c.ackLoop()
}

// stopAcker ends the acker, if it runs, and waits for it. Called by the
// receiver as it ends.
func (c *client) stopAcker() {
	if c.res.stop != nil {
		close(c.res.stop)
		c.res.wg.Wait()
	}
}

// frameDone counts a frame (header h) the receiver is done with, if it is
// counted and was read whole; one being skipped counts once the next
// header has been read, which completes the skip. It runs after every
// frame handled.
func (c *client) frameDone(r *protocol.Reader, h protocol.Header) {
	rs := &c.res
	if !rs.have {
		return
	}
	n := uint64(0)
	if rs.pending {
		rs.pending = false
		n++
	}
	if protocol.Counted(h.Type) {
		if r.Remaining() == 0 {
			n++
		} else {
			rs.pending = true
		}
	}
	if n > 0 {
		rs.cursorJ += n
		rs.count.Add(n)
		select {
		case rs.sig <- struct{}{}:
		default:
		}
	}
}

// cursorFrame takes a cursor frame (payload p): a resume names it, and
// the counted frames read after it.
func (c *client) cursorFrame(p []byte) {
	rs := &c.res
	if !rs.have || !rs.cursors {
		c.log.printf("client: ignoring cursor: not negotiated")
		return
	}
	if rs.pending { // the frame being skipped came before the cursor
		rs.pending = false
		rs.count.Add(1)
	}
	rs.cursor = append(rs.cursor[:0], p...)
	rs.cursorJ = 0
}

// ackLoop acknowledges the counted frames received: at once when ackEvery
// wait, else ackDelay after the first. It is owned by the receiver, which
// ends it (stopAcker) as the session ends. A write waits while the
// session reconnects, and then goes on the new connection.
func (c *client) ackLoop() {
	rs := &c.res
	defer rs.wg.Done()
	var acked uint64
	timer := time.NewTimer(ackDelay)
	timer.Stop()
	defer timer.Stop()
	armed := false
	send := func() {
		if n := rs.count.Load(); n > acked {
			if c.write(protocol.AppendCount(nil, protocol.Received, n)) == nil {
				acked = n
			}
		}
	}
	for {
		select {
		case <-rs.stop:
			return
		case <-rs.sig:
			if rs.count.Load()-acked >= ackEvery {
				send()
				if armed {
					timer.Stop()
					armed = false
				}
			} else if !armed {
				timer.Reset(ackDelay)
				armed = true
			}
		case <-timer.C:
			armed = false
			send()
		}
	}
}

// errResumeRefused is the error of a resume the server refused: the
// session is over.
var errResumeRefused = errors.New("the server refused the resume")

// reconnect resumes the session after its stream failed (lost), and returns the
// Reader of the new connection; nil if the session cannot go on (no
// session, quitting, every address refusing, the resume refused or the
// window passed), the caller then ends it as before.
func (c *client) reconnect(lost error) *protocol.Reader {
	rs := &c.res
	ctx := rs.ctx
	// A stream that breaks the protocol is not a lost connection.
	if !rs.have || c.quitting.Load() || ctx.Err() != nil || !isStreamError(lost) {
		return nil
	}
	sc := c.nc.(*swapConn)
	sc.cut() // a writer blocked on the lost connection lets go of wmu
	lostAt := time.Now()
	deadline := lostAt.Add(rs.window)
	rs.pending = false // a frame being skipped is sent again
	c.dropFiles()      // files arriving in chunks are cut short: removed, and said so
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.loseUploads()
	order := c.addressOrder()
	backoff := backoffFirst
	for round := 0; ; round++ {
		refused := 0
		for _, addr := range order {
			if c.quitting.Load() || ctx.Err() != nil || time.Now().After(deadline) {
				c.broken.Store(true)
				return nil
			}
			nc, r, rc, err := c.resumeAt(ctx, addr, deadline)
			if err == nil {
				if !sc.swap(nc) {
					c.broken.Store(true)
					return nil
				}
				rs.addr = addr
				c.w.Reset(c.nc)
				c.broken.Store(false)
				c.log.printf("client: connection lost; resumed on %s after %v", addr, time.Since(lostAt).Round(time.Millisecond))
				if rc.missed > 0 {
					c.log.printf("client: missed %d messages while the connection was lost (more than the server keeps)", rc.missed)
				}
				c.sendAgain(rc) // before anything new: wmu is held
				return r
			}
			if errors.Is(err, errResumeRefused) {
				c.log.printf("client: cannot resume the session on %s: %v", addr, err)
				c.broken.Store(true)
				return nil
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused++
			}
		}
		if refused == len(order) {
			// No server at any address: the session went with it.
			c.log.printf("client: connection lost, and no server answers at %s", strings.Join(order, ", "))
			c.broken.Store(true)
			return nil
		}
		if round == 0 {
			c.log.printf("client: connection lost; reconnecting...")
		}
		pause := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, backoffMax)
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// addressOrder returns the addresses to reconnect to: the one of the
// connection lost first, then the others in the order given.
func (c *client) addressOrder() []string {
	all := append([]string{c.cfg.Addr}, c.cfg.Others...)
	order := []string{c.res.addr}
	for _, a := range all {
		if !slices.Contains(order, a) {
			order = append(order, a)
		}
	}
	return order
}

// resumedCount is what a resumed frame says: the counted frames the
// server could not keep, and (taken) how many of the client's frames it
// has taken, exactly or at least.
type resumedCount struct {
	missed, taken uint64
	exact, has    bool // has: the server said taken
}

// resumeAt connects to addr and resumes the session there: ext_hello
// asking for what the first connection asked, then resume. It returns the
// connection, its Reader (which may hold replayed frames) and what the
// resumed frame says. errResumeRefused means the session is over; other
// errors, that this attempt failed.
func (c *client) resumeAt(ctx context.Context, addr string, deadline time.Time) (net.Conn, *protocol.Reader, resumedCount, error) {
	dctx, cancel := context.WithTimeout(ctx, min(resumeDialWait, time.Until(deadline)))
	defer cancel()
	tlsCfg := c.cfg.TLS
	if tlsCfg != nil && addr != c.cfg.Addr {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tlsCfg = tlsCfg.Clone()
			tlsCfg.ServerName = host
		}
	}
	nc, err := c.dialAddr(dctx, addr, tlsCfg)
	if err != nil {
		return nil, nil, resumedCount{}, err
	}
	r, rc, err := c.resumeOn(nc)
	if err != nil {
		nc.Close()
		return nil, nil, resumedCount{}, err
	}
	return nc, r, rc, nil
}

// resumeOn sends ext_hello and resume on nc and reads the answers, for at
// most helloTimeout.
func (c *client) resumeOn(nc net.Conn) (*protocol.Reader, resumedCount, error) {
	nc.SetDeadline(time.Now().Add(c.helloTimeout()))
	defer nc.SetDeadline(time.Time{})
	asked := c.features()
	hello := protocol.AppendExtHello(nil, asked)
	if _, err := nc.Write(protocol.AppendResumeAt(hello, c.cfg.User, c.res.token, c.res.count.Load(), c.res.cursorJ, c.res.cursor)); err != nil {
		return nil, resumedCount{}, err
	}
	r := newConnReader(nc)
	h, err := r.ReadHeader()
	if err != nil {
		return nil, resumedCount{}, err
	}
	if h.Type != protocol.ExtHello || h.Length > c.limits.MaxPayload(protocol.ToClient, h.Type) {
		return nil, resumedCount{}, fmt.Errorf("%w: it answered ext_hello with %s", errResumeRefused, h.Name)
	}
	p, err := r.ReadPayload(nil)
	if err != nil {
		return nil, resumedCount{}, err
	}
	got, err := protocol.ParseFeatures(p)
	if err != nil {
		return nil, resumedCount{}, err
	}
	if !c.sameFeatures(got) {
		return nil, resumedCount{}, fmt.Errorf("%w: it grants %q, not what the session had", errResumeRefused, got)
	}
	if h, err = r.ReadHeader(); err != nil {
		return nil, resumedCount{}, err
	}
	switch {
	case h.Type == protocol.ResumeFailed:
		return nil, resumedCount{}, fmt.Errorf("%w (the session ended, or the server is another)", errResumeRefused)
	case h.Type != protocol.Resumed || h.Length > c.limits.MaxPayload(protocol.ToClient, h.Type):
		return nil, resumedCount{}, fmt.Errorf("%w: it answered resume with %s", errResumeRefused, h.Name)
	}
	if p, err = r.ReadPayload(nil); err != nil {
		return nil, resumedCount{}, err
	}
	var rc resumedCount
	if rc.missed, rc.taken, rc.exact, rc.has, err = protocol.ParseResumed(p); err != nil {
		return nil, resumedCount{}, fmt.Errorf("%w: %v", errResumeRefused, err)
	}
	if rc.has && !c.sent.on {
		return nil, resumedCount{}, fmt.Errorf("%w: resumed %q says taken, not negotiated", errResumeRefused, p)
	}
	return r, rc, nil
}

// sameFeatures reports whether a resumed connection was granted what the
// first one was: the receiver's decoding rests on it.
func (c *client) sameFeatures(got []string) bool {
	has := func(f string) bool { return slices.Contains(got, f) }
	return has(protocol.FeatureResume) &&
		has(protocol.FeatureCursor) == c.res.cursors &&
		has(protocol.FeatureTaken) == c.sent.on &&
		has(protocol.FeatureChunkedFile) == c.chunked &&
		has(protocol.FeatureFileUpload) == c.uploading &&
		has(protocol.FeatureOnline) == c.online &&
		has(protocol.FeatureHeartbeat) == c.hb.on
}

// loseUploads ends the uploads under way on a connection that was lost:
// the server gave them up with it (who got a file whose last byte had
// gone is not known). Called with wmu held, so that none of them writes
// to the new connection, which knows nothing of them.
func (c *client) loseUploads() {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	for _, u := range c.ups {
		if u.plain {
			continue // its send_file failed with the connection
		}
		select {
		case <-u.lost:
		default:
			close(u.lost)
			c.log.printf("client: the connection was lost while %s was being sent: it may not have reached everybody; send it again", u.name)
		}
	}
}

// writeUp is write for upload u's frames: nothing is written once the
// connection u went on was lost.
func (c *client) writeUp(u *upload, parts ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-u.lost:
		return errBroken
	default:
	}
	return c.writeLocked(parts...)
}

// ParseAddresses reads the client's -a: a comma-separated list of
// HOST[:PORT] (an IPv6 address in brackets when it has a port), port
// being the port of those without. It returns host:port addresses.
func ParseAddresses(list string, port int) ([]string, error) {
	var out []string
	for a := range strings.SplitSeq(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("empty address in %q", list)
		}
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			// No port (or an IPv6 address without brackets).
			host, p = strings.Trim(a, "[]"), strconv.Itoa(port)
		} else if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || host == "" {
			return nil, fmt.Errorf("bad address %q", a)
		}
		out = append(out, net.JoinHostPort(host, p))
	}
	return out, nil
}
