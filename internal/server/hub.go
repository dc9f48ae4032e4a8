package server

import (
	"errors"
	"slices"
	"sync"
)

// Admission errors returned by Hub.Join.
var (
	ErrServerFull = errors.New("server full")
	ErrNameTaken  = errors.New("username not available")
	// ErrUnavailable is returned when the hub cannot decide a join now
	// (a cluster node cut off from its cluster, a registry without a
	// majority, a node with more joins queued than it takes): the join is
	// answered as one that may be tried again (docs/PROTOCOL.md,
	// "try-again").
	ErrUnavailable = errors.New("registry unavailable")
	// ErrPeerGone is returned when a delivery targets a user that left.
	ErrPeerGone = errors.New("peer gone")
	// ErrSlowConsumer is returned when a peer's send queue overflowed.
	ErrSlowConsumer = errors.New("slow consumer")
)

// Peer is a joined user that frames can be delivered to. A cluster
// implementation may stand a remote user behind it.
type Peer interface {
	// Name returns the user's joined name.
	Name() string
	// Send queues a complete frame for the user. It never blocks; the frame
	// must not be modified afterwards, so one frame can be shared by many
	// peers. An error means the frame was not queued (the peer is gone or
	// was cut off as a slow consumer).
	Send(frame []byte) error
	// Offer queues frame as Send does, unless the user's backlog leaves
	// no room for it below the server's pace mark while the user is still
	// taking bytes: then it queues nothing and returns a channel closed
	// when the frame should be offered again. A sender that waits on it
	// before going on is paced to what its recipients take, so that a
	// flood never gets a recipient reading at an honest pace cut off.
	Offer(frame []byte) (retry <-chan struct{}, err error)
	// OpenFile starts delivering a file whose content the caller then
	// writes in chunks. A peer that takes whole frames only gets its
	// forward_file once the file is complete (the server holds it until
	// then, and may refuse: ErrSpoolFull); one that asked for chunked
	// files gets file_* frames that other frames may come between. It
	// gives up when cancel is closed.
	OpenFile(head FileHead, cancel <-chan struct{}) (FileStream, error)
}

// Evictable is implemented by the server's own connections: a Hub may cut
// a joined user off (a cluster node that lost its cluster must, before the
// rest of the cluster gives the name away). The user leaves as if its
// connection had dropped.
type Evictable interface {
	Peer
	Evict(cause error)
}

// FileHead describes a file being relayed.
type FileHead struct {
	ID       uint64 // unique per transfer in the server
	Sender   string
	Filename string
	Size     int64
}

// Chunk is a part of a file's content, as read from its sender. A peer
// taking whole frames queues Data as the next bytes of the forward_file
// frame; a chunked peer cuts it into file_chunk frames. Data must not be
// modified once written.
type Chunk struct {
	ID   uint64 // the transfer's id (FileHead.ID)
	Data []byte
	ref  *fileBuf // the pooled buffer holding Data, if any
}

// FileStream is one file being delivered to a peer; see Peer.OpenFile.
type FileStream interface {
	// Write queues the next chunk. It may wait a little for a peer that
	// is behind; a chunked peer that stays behind has the rest held for
	// it (lag.go).
	Write(c Chunk) error
	// Close ends a complete file.
	Close()
	// Abort ends an incomplete file. A peer taking whole frames was sent
	// nothing of it; a chunked peer is told the file was abandoned.
	Abort()
}

// Hub is the user registry and delivery fabric: it admits users under a
// cap with unique names and finds them by name. The server uses only this
// interface, so a cluster can replace the local implementation.
type Hub interface {
	// Join admits p under its name unless maxUsers are already joined
	// (ErrServerFull) or the name is taken (ErrNameTaken).
	Join(p Peer, maxUsers int) error
	// Leave removes p if it is the peer joined under its name.
	Leave(p Peer)
	// Lookup returns the peer joined under name, or nil.
	Lookup(name string) Peer
	// Users returns the joined names sorted ascending by bytes. The caller
	// must not modify the slice.
	Users() []string
	// Len returns the number of joined users.
	Len() int
}

// QueuedJoiner is implemented by a Hub whose joins wait in a queue of
// its own, decided in the order they were queued (a cluster's registry,
// whose writes take a round trip to a majority): JoinQueued is Join, and
// calls queued once the join has its place in that queue. The server's
// first-come order (PROTOCOL.md, section 4) is then the queue's, and the
// next connection's join need not wait for this one to be decided: in a
// storm of joins it waited for its predecessors' decisions, up to the 2 s
// of grace each (issue 21).
type QueuedJoiner interface {
	Hub
	JoinQueued(p Peer, maxUsers int, queued func()) error
}

// LocalHub is a Hub for a single server process.
type LocalHub struct {
	mu     sync.RWMutex
	peers  map[string]Peer // guarded by mu
	sorted []string        // cached result of Users, nil when stale; guarded by mu
}

// NewLocalHub returns an empty LocalHub.
func NewLocalHub() *LocalHub {
	return &LocalHub{peers: make(map[string]Peer)}
}

// Join implements Hub.
func (h *LocalHub) Join(p Peer, maxUsers int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.peers) >= maxUsers {
		return ErrServerFull
	}
	if _, ok := h.peers[p.Name()]; ok {
		return ErrNameTaken
	}
	if s, ok := p.(stander); ok {
		s.stood() // before any sender can find p
	}
	h.peers[p.Name()] = p
	h.sorted = nil
	return nil
}

// Leave implements Hub.
func (h *LocalHub) Leave(p Peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.peers[p.Name()] == p {
		delete(h.peers, p.Name())
		h.sorted = nil
	}
}

// Lookup implements Hub.
func (h *LocalHub) Lookup(name string) Peer {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.peers[name]
}

// Users implements Hub.
func (h *LocalHub) Users() []string {
	h.mu.RLock()
	s := h.sorted
	h.mu.RUnlock()
	if s != nil {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sorted == nil {
		s := make([]string, 0, len(h.peers))
		for name := range h.peers {
			s = append(s, name)
		}
		slices.Sort(s) // Go string order is byte order
		h.sorted = s
	}
	return h.sorted
}

// Len implements Hub.
func (h *LocalHub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.peers)
}
