// Package server implements the chat server of PROTOCOL.md: it admits
// users, relays messages and files between them, and prints the protocol's
// event lines on stdout.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Config holds the server's settings. DefaultConfig returns the settings
// the server runs with when no flag says otherwise, every limit on.
//
// Zero turns off, in Config as on the command line, each limit that can
// be off: FloodRate, FloodBytes, PaceBacklog, MaxConnsPerAddr,
// MinUploadRate, ResumeWindow and HeartbeatTimeout (so a Config literal runs without them). Any other zero
// field takes its default. PaceBacklog must be below SendQueueBytes:
// New panics on a Config that Check refuses, so a program that takes the
// settings from its user calls Check first.
type Config struct {
	// MaxClients is the most users joined at once (default 10).
	MaxClients int
	// MaxFileSize is the largest file content relayed (default 1 GiB).
	MaxFileSize int64
	// JoinTimeout closes a connection that has not joined in time
	// (default 30 s).
	JoinTimeout time.Duration
	// SendQueueBytes bounds the frames waiting for one connection
	// (default 8 MiB).
	SendQueueBytes int
	// StallTimeout cuts off a peer whose socket takes nothing, or a file
	// sender who sends nothing, for this long (default 30 s).
	StallTimeout time.Duration
	// Stdout receives the protocol's event lines (default io.Discard).
	Stdout io.Writer
	// Logger receives diagnostics (default: discarded).
	Logger *slog.Logger
	// Hub is the user registry (default: a new LocalHub).
	Hub Hub
	// FloodRate is the sustained rate of frames per second a joined
	// connection may send before its reading is paced (0: no limit;
	// DefaultConfig: 1000). FloodBurst frames may come at once (default
	// 10000).
	FloodRate  float64
	FloodBurst int
	// FloodBytes is the sustained rate of bytes per second a connection
	// may have delivered (each frame's size times its recipients) before
	// its reading is paced (0: no limit; DefaultConfig: 16 MiB).
	// FloodBytesBurst bytes may go at once (default 64 MiB).
	FloodBytes      float64
	FloodBytesBurst int64
	// PaceBacklog pauses a sender's reading while a recipient of its
	// last frame has this many bytes or more waiting in its send queue,
	// until they drop below it or the recipient is gone (0: never;
	// DefaultConfig: 2 MiB). It must be below SendQueueBytes (Check); it
	// is what lets a recipient that reads at an honest pace outlast a
	// flood instead of being cut off.
	PaceBacklog int
	// MaxConnsPerAddr caps the open connections from one IP address (0:
	// no cap; DefaultConfig: 100). Loopback addresses are exempt unless
	// LimitLoopback is set.
	MaxConnsPerAddr int
	LimitLoopback   bool
	// SpoolDir is where files for users who take whole frames are held
	// until they are complete (default os.TempDir()); spool.go.
	// SpoolMaxBytes bounds the files held there at once (default 4 GiB):
	// a file that would take them past it does not reach such users.
	// SpoolMemoryBytes bounds the files held in memory instead (default
	// 64 MiB; a file of at most an eighth of it may be).
	SpoolDir         string
	SpoolMaxBytes    int64
	SpoolMemoryBytes int64
	// MinUploadRate is the fewest bytes per second a file's sender must
	// bring, on average over each MinUploadWindow the server spends
	// waiting for it (default 30 s), or the file is cut off: a send_file
	// sender's connection is closed, an upload ended (0: no floor;
	// DefaultConfig: 1 KiB).
	MinUploadRate   float64
	MinUploadWindow time.Duration
	// ResumeWindow is how long a session granted resume outlives a lost
	// connection, waiting for a resume (0: resume is not granted);
	// ResumeBuffer bounds the bytes kept for it (default 1 MiB).
	// session.go.
	ResumeWindow time.Duration
	ResumeBuffer int
	// HeartbeatTimeout cuts off a connection granted heartbeat that has
	// sent nothing for this long, pinging it at half of it (0: heartbeat
	// is not granted; DefaultConfig: 15 s). heartbeat.go.
	HeartbeatTimeout time.Duration

	// The server's fixed timers, settable only so that the tests that
	// wait on them need not (zero: the default).
	admissionGrace    time.Duration // defaultAdmissionGrace
	closeFlushTimeout time.Duration // defaultCloseFlushTimeout
	closeLinger       time.Duration // defaultCloseLinger
}

// Defaults from PROTOCOL.md and docs/OPERATIONS.md.
const (
	DefaultMaxClients      = 10
	DefaultJoinTimeout     = 30 * time.Second
	DefaultSendQueueBytes  = 8 << 20
	DefaultStallTimeout    = 30 * time.Second
	DefaultFloodRate       = 1000
	DefaultFloodBurst      = 10000
	DefaultFloodBytes      = 16 << 20
	DefaultFloodBytesBurst = 64 << 20
	DefaultPaceBacklog     = 2 << 20
	DefaultMaxConnsPerAddr = 100
	DefaultSpoolMaxBytes   = 4 << 30
	DefaultSpoolMemory     = 64 << 20
	DefaultMinUploadRate   = 1 << 10
	DefaultMinUploadWindow = 30 * time.Second
	// defaultAdmissionGrace is how long a join waits for an
	// earlier-accepted connection's first frame (PROTOCOL.md: 2 s).
	defaultAdmissionGrace = 2 * time.Second
	// defaultCloseFlushTimeout bounds the flushing of a closing
	// connection: its last frames, then its close (PROTOCOL.md: 5 s).
	defaultCloseFlushTimeout = 5 * time.Second
	// defaultCloseLinger bounds the wait for the peer to close after we
	// have (PROTOCOL.md: 2 s).
	defaultCloseLinger = 2 * time.Second
)

// DefaultConfig returns the settings the server runs with when no flag
// says otherwise: every limit on.
func DefaultConfig() Config {
	return Config{
		MaxClients:       DefaultMaxClients,
		MaxFileSize:      protocol.DefaultMaxFileSize,
		JoinTimeout:      DefaultJoinTimeout,
		SendQueueBytes:   DefaultSendQueueBytes,
		StallTimeout:     DefaultStallTimeout,
		FloodRate:        DefaultFloodRate,
		FloodBurst:       DefaultFloodBurst,
		FloodBytes:       DefaultFloodBytes,
		FloodBytesBurst:  DefaultFloodBytesBurst,
		PaceBacklog:      DefaultPaceBacklog,
		MaxConnsPerAddr:  DefaultMaxConnsPerAddr,
		SpoolDir:         os.TempDir(),
		SpoolMaxBytes:    DefaultSpoolMaxBytes,
		SpoolMemoryBytes: DefaultSpoolMemory,
		MinUploadRate:    DefaultMinUploadRate,
		MinUploadWindow:  DefaultMinUploadWindow,
		ResumeWindow:     DefaultResumeWindow,
		ResumeBuffer:     DefaultResumeBuffer,
		HeartbeatTimeout: DefaultHeartbeatTimeout,
	}
}

// Check returns an error if c's settings contradict each other: a
// PaceBacklog at or above SendQueueBytes (its default, if zero), which
// would let the queue overflow before its sender is paced. New panics
// on such a Config rather than run with settings other than those given.
func (c Config) Check() error {
	queue := c.SendQueueBytes
	if queue <= 0 {
		queue = DefaultSendQueueBytes
	}
	if c.PaceBacklog >= queue {
		return fmt.Errorf("PaceBacklog (%d) must be below SendQueueBytes (%d)", c.PaceBacklog, queue)
	}
	return nil
}

// setDefaults gives every zero field that has no "off" its default.
func (c *Config) setDefaults() {
	def := DefaultConfig()
	orDefault(&c.MaxClients, def.MaxClients)
	orDefault(&c.MaxFileSize, def.MaxFileSize)
	orDefault(&c.JoinTimeout, def.JoinTimeout)
	orDefault(&c.SendQueueBytes, def.SendQueueBytes)
	orDefault(&c.StallTimeout, def.StallTimeout)
	orDefault(&c.FloodBurst, def.FloodBurst)
	orDefault(&c.FloodBytesBurst, def.FloodBytesBurst)
	orDefault(&c.SpoolMaxBytes, def.SpoolMaxBytes)
	orDefault(&c.SpoolMemoryBytes, def.SpoolMemoryBytes)
	orDefault(&c.MinUploadWindow, def.MinUploadWindow)
	orDefault(&c.ResumeBuffer, def.ResumeBuffer)
	orDefault(&c.admissionGrace, defaultAdmissionGrace)
	orDefault(&c.closeFlushTimeout, defaultCloseFlushTimeout)
	orDefault(&c.closeLinger, defaultCloseLinger)
	if c.SpoolDir == "" {
		c.SpoolDir = def.SpoolDir
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Hub == nil {
		c.Hub = NewLocalHub()
	}
}

// orDefault sets *v to def unless *v is positive.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// limits returns the payload limits the settings imply.
func (c *Config) limits() protocol.Limits {
	return protocol.Limits{MaxFileSize: c.MaxFileSize}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server closed")

// Server is a chat server. Create it with New.
type Server struct {
	cfg     Config // read-only after New
	out     *printer
	admit   *admission
	metrics *metrics

	nextID     atomic.Uint64 // connection ids
	nextFileID atomic.Uint64 // file transfer ids
	presence   presence      // join and leave notices (presence.go)
	sessions   sessionTable  // sessions granted resume (session.go)
	heartbeats heartbeats    // connections granted heartbeat (heartbeat.go)
	shutting   atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{} // guarded by mu
	conns     map[*conn]struct{}        // guarded by mu
	perAddr   map[netip.Addr]int        // open connections by counted address; guarded by mu
	connWG    sync.WaitGroup            // one per conn goroutine

	spoolMu   sync.Mutex
	spools    map[uint64]*spool // being written, by transfer id; guarded by spoolMu
	spoolMem  int64             // bytes of spools in memory; guarded by spoolMu
	spoolDisk int64             // bytes of spools on disk; guarded by spoolMu

	testHookConnClosed func() // if set, called after each connection is released
}

// New returns a Server with cfg's settings. It panics if cfg.Check
// returns an error.
func New(cfg Config) *Server {
	if err := cfg.Check(); err != nil {
		panic("server.New: " + err.Error())
	}
	cfg.setDefaults()
	s := &Server{
		cfg:       cfg,
		admit:     newAdmission(cfg.admissionGrace),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		perAddr:   make(map[netip.Addr]int),
		spools:    make(map[uint64]*spool),
	}
	s.metrics = newMetrics(s)
	s.out = newPrinter(cfg.Stdout, cfg.Logger, s.metrics.stdoutDropped.Inc)
	sweepSpools(cfg.SpoolDir, cfg.Logger)
	if ps, ok := cfg.Hub.(PresenceSource); ok {
		ps.OnPresence(s.remotePresence)
	}
	return s
}

// Serve accepts connections on ln and serves each in its own goroutine
// until ln fails or Shutdown is called. It always returns a non-nil error:
// ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off as
				// net/http does, and keep serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.cfg.Logger.Warn("accept failed; retrying", "err", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		go c.serve()
	}
}

// isTemporary reports whether an accept error is worth retrying.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// newConn registers a new connection, or closes it if the server is
// shutting down or its address has too many connections open.
func (s *Server) newConn(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		nc.Close()
		return nil
	}
	addr, counted := s.countedAddr(nc)
	if counted {
		if s.perAddr[addr] >= s.cfg.MaxConnsPerAddr {
			s.metrics.ipRejected.Inc()
			s.cfg.Logger.Warn("refusing connection: too many from its address", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnsPerAddr)
			nc.Close()
			return nil
		}
		s.perAddr[addr]++
	}
	c := newConn(s, nc, s.admit.add(time.Now()))
	c.addr, c.addrCounted = addr, counted
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return c
}

// countedAddr returns the IP address of nc's peer and whether it is
// subject to the per-address limit.
func (s *Server) countedAddr(nc net.Conn) (netip.Addr, bool) {
	if s.cfg.MaxConnsPerAddr <= 0 {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap()
	if addr.IsLoopback() && !s.cfg.LimitLoopback {
		return addr, false
	}
	return addr, true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.addrCounted {
		if s.perAddr[c.addr]--; s.perAddr[c.addr] <= 0 {
			delete(s.perAddr, c.addr)
		}
	}
	s.mu.Unlock()
	if s.testHookConnClosed != nil {
		s.testHookConnClosed()
	}
	s.connWG.Done()
}

// Shutdown stops accepting, cuts every connection off and waits until
// their goroutines have ended or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kill(reasonServerShutdown, nil)
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		s.heartbeats.wg.Wait() // the last connection gone, the sweeper ends
		s.sessions.endAll()
		s.out.flush()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
