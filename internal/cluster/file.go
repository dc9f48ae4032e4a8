package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Subjects of file transfers between nodes, after the cluster's name.
const (
	fileOpenSubject  = ".fo." // + <node>: a transfer to one of its users begins
	fileChunkSubject = ".fc." // + <node>.<source incarnation>.<id>: its chunks, end or abort
	fileAckSubject   = ".fk." // + <node>: bytes of its transfers that other nodes took
)

const (
	// fileWindow is the most bytes of one transfer in flight between two
	// nodes: the receiving node acks what its user's queue took, so a
	// slow recipient paces the sending client, as on one node. Every
	// byte in flight is also live heap on the receiving node, where the
	// garbage collector lets the heap grow to twice what is live: 4 MiB
	// kept a 1 GiB transfer's RSS growth near half of the 8 MiB window's
	// at the same rate.
	fileWindow = 4 << 20
	// filePiece is the most file bytes in one message between nodes. The
	// engine reads at most 64 KiB at a time and nats.go 32 KiB: a message
	// larger than a read is assembled in a buffer of its own on every
	// hop, a large allocation and a copy more each time. Messages of
	// 16 KiB (with the kind byte) mostly fit a read and are small objects
	// of one size class. The receiving node gathers the pieces waiting
	// into a pooled buffer before its user's stream takes them, so that
	// the user's socket still gets large writes (docs/PERFORMANCE.md).
	filePiece = 16<<10 - 1
	// Kinds of the messages on a transfer's subject.
	chunkData  = 'd'
	chunkEnd   = 'e'
	chunkAbort = 'a'
)

// errTransferFailed is returned by Write once the receiving node gave up.
var errTransferFailed = errors.New("the receiving node ended the transfer")

// fileSender is this node's side of transfers to other nodes.
type fileSender struct {
	nextID atomic.Uint64
	ackSub *nats.Subscription
	openIn *nats.Subscription

	mu   sync.Mutex
	outs map[uint64]*remoteStream // transfers in flight, by id; guarded by mu
}

func (r *relay) subscribeFiles() error {
	nc := r.nc
	var err error
	r.files.outs = make(map[uint64]*remoteStream)
	if r.files.ackSub, err = nc.Subscribe(r.subject(fileAckSubject, r.self), r.fileAcked); err != nil {
		return err
	}
	r.files.openIn, err = nc.Subscribe(r.subject(fileOpenSubject, r.self), r.fileOpened)
	return err
}

func (r *relay) unsubscribeFiles() {
	for _, s := range []*nats.Subscription{r.files.ackSub, r.files.openIn} {
		if s != nil {
			s.Unsubscribe()
		}
	}
}

// remoteStream is a server.FileStream to a user on another node. It is
// used by the sending connection's serve goroutine only, but acks arrive
// on the engine's.
type remoteStream struct {
	r      *relay
	id     uint64
	subj   string
	cancel <-chan struct{}
	done   bool   // owned by the sender
	msg    []byte // a chunk being published; owned by the sender

	mu     sync.Mutex
	sent   int64         // guarded by mu
	acked  int64         // guarded by mu
	failed bool          // the receiving node gave up; guarded by mu
	room   chan struct{} // closed when an ack comes; guarded by mu
}

// openRemoteFile starts a transfer to a remote user: the receiving node
// opens the user's stream when the open message reaches it, and acks the
// bytes its user's queue takes.
func (r *relay) openRemoteFile(p *remotePeer, head server.FileHead, cancel <-chan struct{}) (server.FileStream, error) {
	id := r.files.nextID.Add(1)
	s := &remoteStream{
		r:      r,
		id:     id,
		subj:   fmt.Sprintf("%s.%x.%d", r.subject(fileChunkSubject, p.node), r.inc, id),
		cancel: cancel,
		room:   make(chan struct{}),
	}
	r.files.mu.Lock()
	r.files.outs[id] = s
	r.files.mu.Unlock()
	b := fileOpen{id: id, inc: r.inc, token: p.key.token, size: head.Size,
		name: p.key.name, sender: head.Sender, filename: head.Filename, src: r.self}.append(nil)
	select {
	case <-cancel:
		s.forget()
		return nil, server.ErrPeerGone
	default:
	}
	// The receiving node answers once it listens for the chunks. The
	// sender's giving up does not cut the wait short (it is bounded, and
	// the answer normally takes a round trip): once the open is out,
	// the receiving node may open the user's stream, and only a node that
	// already listens hears the abort that ends it at once instead of
	// after the stall limit.
	ctx, cancelOpen := context.WithTimeout(r.ctx, kvTimeout)
	defer cancelOpen()
	reply, err := r.nc.RequestWithContext(ctx, r.subject(fileOpenSubject, p.node), b)
	if err == nil && string(reply.Data) != "ok" {
		err = fmt.Errorf("%w: %s", errTransferFailed, reply.Data)
	}
	if err == nil {
		select {
		case <-cancel:
			err = server.ErrPeerGone
		default:
			return s, nil
		}
	}
	// A late answer may still come: the abort ends what it opened.
	s.end(chunkAbort)
	return nil, err
}

func (s *remoteStream) forget() {
	s.r.files.mu.Lock()
	delete(s.r.files.outs, s.id)
	s.r.files.mu.Unlock()
}

// Write implements server.FileStream: it waits while a window's worth is
// unacked, giving up after the stall limit, then publishes the chunk in
// pieces of at most filePiece bytes.
func (s *remoteStream) Write(c server.Chunk) error {
	stall := time.NewTimer(s.r.stallTimeout)
	defer stall.Stop()
	for {
		s.mu.Lock()
		if s.failed {
			s.mu.Unlock()
			return errTransferFailed
		}
		if s.sent-s.acked+int64(len(c.Data)) <= fileWindow || s.sent == s.acked {
			s.sent += int64(len(c.Data))
			s.mu.Unlock()
			break
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-s.cancel:
			return server.ErrPeerGone
		case <-stall.C:
			return fmt.Errorf("%w: no ack for %v", errTransferFailed, s.r.stallTimeout)
		}
	}
	// Publish copies msg, so one buffer serves every piece.
	for data := c.Data; len(data) > 0; {
		part := data[:min(len(data), filePiece)]
		data = data[len(part):]
		s.msg = append(append(s.msg[:0], chunkData), part...)
		if err := s.r.nc.Publish(s.subj, s.msg); err != nil {
			return err
		}
	}
	return nil
}

// Close implements server.FileStream.
func (s *remoteStream) Close() { s.end(chunkEnd) }

// Abort implements server.FileStream.
func (s *remoteStream) Abort() { s.end(chunkAbort) }

func (s *remoteStream) end(kind byte) {
	if s.done {
		return
	}
	s.done = true
	s.r.nc.Publish(s.subj, []byte{kind})
	s.forget()
}

// fileAcked takes an ack from a receiving node: id, bytes, and a failure
// flag.
func (r *relay) fileAcked(m *nats.Msg) {
	if len(m.Data) != 17 {
		return
	}
	id, n, failed := binary.BigEndian.Uint64(m.Data), int64(binary.BigEndian.Uint64(m.Data[8:])), m.Data[16] != 0
	r.files.mu.Lock()
	s := r.files.outs[id]
	r.files.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.acked += n
	s.failed = s.failed || failed
	close(s.room)
	s.room = make(chan struct{})
	s.mu.Unlock()
}

// fileOpen announces a transfer to a user on another node.
type fileOpen struct {
	id, inc, token uint64 // the transfer's id and its source's incarnation; the recipient's session
	size           int64
	name, sender   string // the recipient and the sending user
	filename, src  string // the file's name and the source node
}

// append encodes o: id, source incarnation, token, size, then the
// recipient, sender, filename and source node, each after its length
// (one byte: names, filenames and node names are shorter than 256).
func (o fileOpen) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, o.id)
	b = binary.BigEndian.AppendUint64(b, o.inc)
	b = binary.BigEndian.AppendUint64(b, o.token)
	b = binary.BigEndian.AppendUint64(b, uint64(o.size))
	for _, f := range []string{o.name, o.sender, o.filename, o.src} {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b
}

// decodeFileOpen decodes what fileOpen.append encodes; false if b is not
// exactly one such message.
func decodeFileOpen(b []byte) (fileOpen, bool) {
	if len(b) < 32 {
		return fileOpen{}, false
	}
	o := fileOpen{id: binary.BigEndian.Uint64(b), inc: binary.BigEndian.Uint64(b[8:]),
		token: binary.BigEndian.Uint64(b[16:]), size: int64(binary.BigEndian.Uint64(b[24:]))}
	b = b[32:]
	for _, f := range []*string{&o.name, &o.sender, &o.filename, &o.src} {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return fileOpen{}, false
		}
		*f, b = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	}
	return o, len(b) == 0 && o.size >= 0
}

// fileOpened starts the receiving side of a transfer from another node:
// a goroutine, owned by the node, with its own subscription, that writes
// the chunks to the local user's stream and acks them.
func (r *relay) fileOpened(m *nats.Msg) {
	o, ok := decodeFileOpen(m.Data)
	if !ok {
		return
	}
	id, inc, token, size := o.id, o.inc, o.token, o.size
	name, sender, filename, src := o.name, o.sender, o.filename, o.src
	subj := fmt.Sprintf("%s.%x.%d", r.subject(fileChunkSubject, r.self), inc, id)
	sub, err := r.nc.SubscribeSync(subj)
	if err != nil {
		m.Respond([]byte(err.Error()))
		return
	}
	// The sender keeps at most fileWindow unacked; room for twice that.
	sub.SetPendingLimits(-1, 2*fileWindow)
	started := r.spawn(func() {
		defer sub.Unsubscribe()
		if err := m.Respond([]byte("ok")); err != nil {
			return
		}
		r.receiveFile(src, id, name, token, server.FileHead{Sender: sender, Filename: filename, Size: size}, sub)
	})
	if !started {
		sub.Unsubscribe()
		m.Respond([]byte("the node is stopping"))
	}
}

// receiveFile relays one transfer's chunks to the local user: it gathers
// the pieces waiting (up to a pooled buffer's size) into one chunk for the
// user's stream, and acks them once the stream took them.
func (r *relay) receiveFile(src string, id uint64, name string, token uint64, head server.FileHead, sub *nats.Subscription) {
	fail := func() { r.sendFileAck(src, id, 0, true) }
	p, tok, ok := r.h.localToken(name)
	if !ok || tok != token {
		fail()
		return
	}
	// The local id must be unique on this node: the server's own ids
	// count up from 1; these count up from 2^62 (still 19 digits).
	head.ID = 1<<62 + r.inID.Add(1)
	st, err := p.OpenFile(head, r.stop)
	if err != nil {
		fail()
		return
	}
	g := gatherer{c: server.NewChunk(head.ID)}
	defer g.release()
	pass := func(c server.Chunk) error {
		if err := st.Write(c); err != nil {
			return err
		}
		r.sendFileAck(src, id, int64(len(c.Data)), false)
		return nil
	}
	// abandon ends a transfer that cannot go on: the user's stream is
	// aborted and the sending node told.
	abandon := func() {
		st.Abort()
		fail()
	}
	for {
		m, err := nextMsg(r.ctx, sub, r.stallTimeout)
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("a file from another node stalled; abandoning it", "peer", src, "user", name, "file", head.Filename, "err", err)
			}
			abandon()
			return
		}
		if len(m.Data) == 0 {
			continue
		}
		switch m.Data[0] {
		case chunkData:
			err := g.add(m.Data[1:], pass)
			if waiting, _, _ := sub.Pending(); err == nil && waiting == 0 {
				err = g.flush(pass)
			}
			if err != nil {
				abandon()
				return
			}
		case chunkEnd:
			if err := g.flush(pass); err != nil {
				abandon()
				return
			}
			st.Close()
			return
		default:
			st.Abort()
			return
		}
	}
}

// gatherer collects a transfer's pieces in pooled buffers for the user's
// stream. It fills each buffer to its end before it takes the next, and
// what it passed on stays where it is, so the buffers a stream holds are
// full whatever the sizes of the parts passed.
type gatherer struct {
	c    server.Chunk // the buffer being filled
	done int          // c.Data[:done] has been passed on
}

// add appends data, passing on what the buffer holds and taking the next
// one whenever it is full.
func (g *gatherer) add(data []byte, pass func(server.Chunk) error) error {
	for len(data) > 0 {
		if len(g.c.Data) == cap(g.c.Data) {
			if err := g.flush(pass); err != nil {
				return err
			}
			g.c.Release()
			g.c, g.done = server.NewChunk(g.c.ID), 0
		}
		k := min(len(data), cap(g.c.Data)-len(g.c.Data))
		g.c.Data = append(g.c.Data, data[:k]...)
		data = data[k:]
	}
	return nil
}

// flush passes on what was added since the last flush, as a chunk that
// cannot be appended to.
func (g *gatherer) flush(pass func(server.Chunk) error) error {
	if len(g.c.Data) == g.done {
		return nil
	}
	part := g.c
	part.Data = g.c.Data[g.done:len(g.c.Data):len(g.c.Data)]
	if err := pass(part); err != nil {
		return err
	}
	g.done = len(g.c.Data)
	return nil
}

// release gives back the buffer being filled.
func (g *gatherer) release() { g.c.Release() }

// nextMsg returns the next message of sub, waiting at most stall, or
// until ctx ends; a message already waiting is taken without a timer.
func nextMsg(ctx context.Context, sub *nats.Subscription, stall time.Duration) (*nats.Msg, error) {
	if m, err := sub.NextMsg(0); err == nil || !errors.Is(err, nats.ErrTimeout) {
		return m, err
	}
	ctx, cancel := context.WithTimeout(ctx, stall)
	defer cancel()
	return sub.NextMsgWithContext(ctx)
}

func (r *relay) sendFileAck(src string, id uint64, n int64, failed bool) {
	b := binary.BigEndian.AppendUint64(nil, id)
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	flag := byte(0)
	if failed {
		flag = 1
	}
	r.nc.Publish(r.subject(fileAckSubject, src), append(b, flag))
}
