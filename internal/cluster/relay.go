package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gochat/chat/internal/server"
)

// Subjects between nodes, after the cluster's name; <node> is a node name
// in base64.
const (
	framesSubject = ".f." // + <node>: batches of frames for the node's users
	acksSubject   = ".a." // + <node>: bytes of its frames that other nodes delivered
)

const (
	// maxBatch is the most bytes of frames in one NATS message.
	maxBatch = 256 << 10
	// maxOutbound bounds the bytes waiting to be published to one node;
	// past it, frames are dropped and counted (a node that far behind has
	// lost its engine connection).
	maxOutbound = 64 << 20
	// ackEvery is how long delivered bytes wait before they are acked.
	ackEvery = 5 * time.Millisecond
	// creditsLost resets a remote user's credits when no ack came for
	// this long although bytes were in flight (acks or frames were lost).
	creditsLost  = 10 * time.Second
	batchVersion = 1
)

// relay carries frames between nodes: one queue per destination node,
// published in order as batches (see outbound); one subscription
// for the frames addressed to this node's users. A sender is paced by
// credits: at most PaceBacklog bytes of its node's frames may wait at the
// other node for one user, and that node acks them as its user's queue
// takes them (so the pacing of OPERATIONS.md, "Slow readers and floods",
// holds across nodes).
type relay struct {
	// Set at construction, read-only.
	nodeInfo
	h            *Hub
	reg          *registry
	paceBacklog  int           // Config.PaceBacklog: the most bytes in flight to one remote user
	stallTimeout time.Duration // Config.StallTimeout: a file transfer between nodes without progress this long is cut off

	framesIn   *nats.Subscription
	acksIn     *nats.Subscription
	replayIn   *nats.Subscription // replay requests (retain.go)
	originIn   *nats.Subscription // reports of what other nodes originated (originated.go)
	retAcksIn  *nats.Subscription // positions other nodes' clients acknowledged in this node's frames (acks.go)
	seqsIn     *nats.Subscription // other nodes' origin sequences (seqs.go)
	commitIn   *nats.Subscription // other nodes' acknowledgements of this node's probes (commit.go)
	releaseIn  *nats.Subscription // requests to release a session to another node (release.go)
	handoverIn *nats.Subscription // requests for a session's count of the client's frames (handover.go)
	files      fileSender
	inID       atomic.Uint64 // ids of transfers arriving from other nodes

	outMu sync.RWMutex
	out   map[string]*outbound // by destination node; guarded by outMu

	credits [creditShards]creditShard // remote users with bytes in flight, spread by name

	inMu     sync.Mutex
	nwaiting atomic.Int32                 // len(waiting), readable without inMu
	seqs     map[string]seqState          // last batch from each node; guarded by inMu
	waiting  map[string]*waitingUser      // local users with frames waiting for room; guarded by inMu
	acks     map[string]map[creditKey]int // bytes delivered, by source node; guarded by inMu
	ackTick  *time.Timer                  // pending ack flush; guarded by inMu
	inAcks   []ackOf                      // a batch's acks; owned by receive

	retMu sync.Mutex
	ret   map[creditKey]*retained // frames kept for remote users' sessions granted resume (retain.go); guarded by retMu
	// retBytes is the bytes of the frames in ret, for
	// chat_cluster_retained_bytes.
	retBytes atomic.Int64
}

type creditKey struct {
	name  string
	token uint64
}

// creditShards spreads the credits over locks, so that the connections
// sending to other nodes do not all wait on one.
const creditShards = 32

type creditShard struct {
	mu      sync.Mutex
	credits map[creditKey]*credit // guarded by mu
}

// shardSeed seeds the hash that spreads the credits: a shard is this
// process's affair, so any seed will do.
var shardSeed = maphash.MakeSeed()

// shard returns the shard of name's credits.
func (r *relay) shard(name string) *creditShard {
	return &r.credits[maphash.String(shardSeed, name)%creditShards]
}

// credit is what this node has in flight to one remote user.
type credit struct {
	inflight int
	lastAck  time.Time
	room     chan struct{} // closed when an ack comes or the user goes
}

type seqState struct {
	inc uint64
	seq uint64
}

// waitingUser is a local user whose queue had no room for a frame from
// another node: that frame and the ones after it wait, in order.
type waitingUser struct {
	peer   server.Peer
	frames []inFrame // guarded by relay.inMu
	gone   bool      // the user left (or its name went to another session); guarded by relay.inMu
}

type inFrame struct {
	src    string // source node
	key    creditKey
	frame  []byte
	origin string // the source's origin id, for a numbered frame (retain.go)
	seq    uint64 // its origin sequence; 0 if not numbered
}

func newRelay(h *Hub, paceBacklog int, stallTimeout time.Duration) *relay {
	return &relay{
		nodeInfo:     h.nodeInfo,
		h:            h,
		reg:          h.reg,
		paceBacklog:  paceBacklog,
		stallTimeout: stallTimeout,
		out:          make(map[string]*outbound),
		seqs:         make(map[string]seqState),
		waiting:      make(map[string]*waitingUser),
		acks:         make(map[string]map[creditKey]int),
	}
}

func (r *relay) subscribe() error {
	nc := r.nc
	var err error
	if r.framesIn, err = nc.Subscribe(r.subject(framesSubject, r.self), r.receive); err != nil {
		return err
	}
	r.framesIn.SetPendingLimits(-1, 512<<20)
	if r.acksIn, err = nc.Subscribe(r.subject(acksSubject, r.self), r.acked); err != nil {
		return err
	}
	r.acksIn.SetPendingLimits(-1, 64<<20)
	if err := r.subscribeDeadOrigins(); err != nil { // deadorigins.go
		return err
	}
	if err := r.subscribeReplay(); err != nil {
		return err
	}
	if err := r.subscribeHandover(); err != nil {
		return err
	}
	if err := r.subscribeRelease(); err != nil {
		return err
	}
	return r.subscribeFiles()
}

func (r *relay) unsubscribe() {
	for _, s := range []*nats.Subscription{r.framesIn, r.acksIn, r.replayIn, r.originIn, r.retAcksIn, r.seqsIn, r.handoverIn, r.commitIn, r.releaseIn} {
		if s != nil {
			s.Unsubscribe()
		}
	}
	r.unsubscribeFiles()
	r.inMu.Lock()
	if r.ackTick != nil {
		r.ackTick.Stop()
		r.ackTick = nil
	}
	r.inMu.Unlock()
}

// peer returns the server.Peer standing for the remote user name.
func (r *relay) peer(name string, u userEntry) server.Peer {
	p := &remotePeer{r: r, node: u.node, key: creditKey{name, u.token}}
	if u.resume.hash != "" {
		p.ret = r.retainedFor(p.key, &u.resume)
	}
	return p
}

// remotePeer is a user on another node.
type remotePeer struct {
	r    *relay
	node string
	key  creditKey
	ret  *retained // what is kept for the session, if it was granted resume (retain.go)
}

// Name implements server.Peer.
func (p *remotePeer) Name() string { return p.key.name }

// Send implements server.Peer.
func (p *remotePeer) Send(frame []byte) error {
	_, err := p.offer(frame, false)
	return err
}

// Offer implements server.Peer.
func (p *remotePeer) Offer(frame []byte) (<-chan struct{}, error) { return p.offer(frame, true) }

func (p *remotePeer) offer(frame []byte, paced bool) (<-chan struct{}, error) {
	// No registry lookup here: the peer was found a moment ago, and the
	// destination drops frames for a session that has gone.
	r := p.r
	window := r.paceBacklog
	sh := r.shard(p.key.name)
	sh.mu.Lock()
	c := sh.credits[p.key]
	if c == nil {
		if sh.credits == nil {
			sh.credits = make(map[creditKey]*credit)
		}
		c = &credit{lastAck: time.Now()}
		sh.credits[p.key] = c
	}
	if paced && window > 0 && c.inflight > 0 && c.inflight+len(frame) > window && time.Since(c.lastAck) > creditsLost {
		r.quiet.Warn("no acks for a remote user's frames: assuming them lost", "user", p.key.name, "peer", p.node, "inflight", c.inflight)
		c.inflight = 0
	}
	if paced && window > 0 && c.inflight > 0 && c.inflight+len(frame) > window {
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		sh.mu.Unlock()
		return room, nil
	}
	if c.inflight == 0 {
		c.lastAck = time.Now()
	}
	c.inflight += len(frame)
	sh.mu.Unlock()
	queued, local := false, false
	if p.ret != nil {
		queued, local = p.ret.send(r, p.node, p.key, frame)
	} else {
		queued = r.outboundTo(p.node).add(p.key, frame)
	}
	if local { // pushed to a session moved here: no node acks it
		r.returnCredit(p.key, len(frame))
	}
	if !queued {
		r.returnCredit(p.key, len(frame))
		return nil, server.ErrSlowConsumer
	}
	return nil, nil
}

// OpenFile implements server.Peer.
func (p *remotePeer) OpenFile(head server.FileHead, cancel <-chan struct{}) (server.FileStream, error) {
	return p.r.openRemoteFile(p, head, cancel)
}

// returnCredit gives back n bytes of key's credit.
func (r *relay) returnCredit(key creditKey, n int) {
	sh := r.shard(key.name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c := sh.credits[key]
	if c == nil {
		return
	}
	c.inflight = max(0, c.inflight-n)
	c.lastAck = time.Now()
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	if c.inflight == 0 {
		delete(sh.credits, key)
	}
}

// userChanged releases the senders waiting on a remote user who left or
// joined again. It is called with the registry's lock held.
func (r *relay) userChanged(name string, u userEntry, ok bool) {
	sh := r.shard(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k, c := range sh.credits {
		if k.name == name && (!ok || u.token != k.token) {
			if c.room != nil {
				close(c.room)
			}
			delete(sh.credits, k)
		}
	}
}

// outbound is the queue of frames for one node, published in order by
// its goroutine. The goroutine yields once before it takes the queue, so
// that under load the frames of other connections join the batch: at
// 20,000 msgs/s most batches would otherwise carry one frame, and each
// batch costs a write and a read on every hop between the nodes.
type outbound struct {
	r    *relay
	node string
	subj string

	mu         sync.Mutex
	buf        []byte        // encoded entries; guarded by mu
	entries    int           // entries in buf; guarded by mu
	publishing bool          // the goroutine has been woken and not yet emptied buf; guarded by mu
	added      uint64        // entries ever queued; guarded by mu
	published  uint64        // entries ever handed to the engine (or failed to be); guarded by mu
	waiters    []published   // waiting for published to reach theirs (commit.go); guarded by mu
	wake       chan struct{} // has a token when the goroutine is to publish
	spare      []byte        // the other half of buf's double buffer; owned by the publisher
	msg        []byte        // a batch being published; owned by the publisher
	seq        uint64        // owned by the publisher
}

// outboundTo returns the queue for node, starting its publisher.
func (r *relay) outboundTo(node string) *outbound {
	r.outMu.RLock()
	o := r.out[node]
	r.outMu.RUnlock()
	if o != nil {
		return o
	}
	r.outMu.Lock()
	defer r.outMu.Unlock()
	o = r.out[node]
	if o == nil {
		o = &outbound{r: r, node: node, subj: r.subject(framesSubject, node), wake: make(chan struct{}, 1)}
		r.out[node] = o
		r.spawn(o.run) // none once the node stops: nothing is sent then
	}
	return o
}

// add queues frame for the user key; false if the queue is full.
func (o *outbound) add(key creditKey, frame []byte) bool {
	o.mu.Lock()
	if len(o.buf)+len(frame) > maxOutbound {
		o.mu.Unlock()
		o.r.m.dropped.WithLabelValues(o.node).Inc()
		return false
	}
	o.buf = appendEntry(o.buf, key, frame)
	o.entries++
	o.added++
	wake := !o.publishing
	o.publishing = true
	o.mu.Unlock()
	if wake {
		o.wake <- struct{}{} // never blocks: sent once per publishing
	}
	return true
}

// appendEntry encodes one frame for one user: the name's length (1 byte),
// the name, its session token (8), the frame's length (4), the frame.
func appendEntry(b []byte, key creditKey, frame []byte) []byte {
	b = append(b, byte(len(key.name)))
	b = append(b, key.name...)
	b = binary.BigEndian.AppendUint64(b, key.token)
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)))
	return append(b, frame...)
}

// run publishes what add queues, until the node stops.
//
// It is one of the project's four batching writers (with the server's
// sendQueue.writeLoop and printer.flushLoop and the web's wsConn.flush),
// which share a shape: take what waits under the lock, write it without,
// until nothing waits. This one is not the on-demand kind the others are
// (a goroutine started when something waits, gone when nothing does): a
// node has few peers and relays to each all the time, so it keeps one
// goroutine per peer for the node's life and wakes it with a token. It
// yields before it takes the queue so that other connections' frames join
// the batch, cuts the batch into messages of at most maxBatch, each with
// its sequence number. A full queue refuses a frame (add returns false)
// rather than make its sender wait, and a failed publish is counted and
// logged while the rest goes on (the receiver's checkSeq reports the
// batches lost). (Issue 24 item 10.)
func (o *outbound) run() {
	stop := o.r.stop
	for {
		select {
		case <-o.wake:
		case <-stop:
			return
		}
		runtime.Gosched()
		o.mu.Lock()
		for len(o.buf) > 0 {
			o.publishOnceLocked()
		}
		o.publishing = false
		o.mu.Unlock()
	}
}

// publishOnceLocked publishes what is queued, in batches of at most
// maxBatch, with mu released meanwhile. The caller holds mu.
func (o *outbound) publishOnceLocked() {
	n := &o.r.nodeInfo
	whole, entries := o.buf, o.entries
	o.buf, o.entries = o.spare[:0], 0
	o.mu.Unlock()
	for buf := whole; len(buf) > 0; {
		k := cutBatch(buf, maxBatch)
		o.seq++
		// Publish copies msg, so one buffer serves every batch.
		msg := o.msg[:0]
		msg = append(msg, batchVersion)
		msg = binary.BigEndian.AppendUint64(msg, n.inc)
		msg = binary.BigEndian.AppendUint64(msg, o.seq)
		msg = append(msg, byte(len(n.self)))
		msg = append(msg, n.self...)
		msg = append(msg, buf[:k]...)
		if err := n.nc.Publish(o.subj, msg); err != nil {
			n.m.dropped.WithLabelValues(o.node).Inc()
			n.quiet.Warn("cannot relay frames", "peer", o.node, "err", err)
		}
		o.msg = msg
		buf = buf[k:]
	}
	n.m.framesOut.WithLabelValues(o.node).Add(float64(entries))
	o.mu.Lock()
	o.spare = whole[:0]
	o.published += uint64(entries)
	if len(o.waiters) > 0 {
		o.wakeWaitersLocked() // commit.go
	}
}

// cutBatch returns how many bytes of whole entries at the front of buf
// make a batch of at most limit bytes (at least one entry).
func cutBatch(buf []byte, limit int) int {
	k := 0
	for k < len(buf) {
		e := entrySize(buf[k:])
		if k > 0 && k+e > limit {
			break
		}
		k += e
	}
	return k
}

func entrySize(b []byte) int {
	nl := int(b[0])
	fl := binary.BigEndian.Uint32(b[1+nl+8:])
	if fl&seqFlag != 0 { // an origin sequence follows (retain.go)
		return 1 + nl + 8 + 4 + 8 + int(fl&^seqFlag)
	}
	return 1 + nl + 8 + 4 + int(fl)
}

var errBadBatch = errors.New("bad batch")

// receive delivers a batch of frames from another node to this node's
// users, in order. It runs on the frames subscription's goroutine only.
func (r *relay) receive(m *nats.Msg) {
	b := m.Data
	if len(b) < 18 || b[0] != batchVersion {
		r.quiet.Warn("ignoring a malformed batch of frames")
		return
	}
	inc, seq := binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint64(b[9:])
	nl := int(b[17])
	if len(b) < 18+nl {
		return
	}
	src := string(b[18 : 18+nl])
	if !r.reg.leased(src, inc) {
		r.ignored.note(r.log, "batch of frames", src)
		return
	}
	r.checkSeq(src, inc, seq)
	body := b[18+nl:]
	count, err := countEntries(body)
	if err != nil {
		r.quiet.Warn("ignoring a malformed batch of frames", "peer", src, "err", err)
		return
	}
	r.m.framesIn.WithLabelValues(src).Add(float64(count))
	acks := r.inAcks[:0]
	origin := ""
	for len(body) > 0 {
		var e batchEntry
		e, body, _ = nextEntry(body)
		name, p, token, ok := r.h.localEntry(e.name)
		if !ok || token != e.token {
			// The session is gone: nothing waits.
			acks = append(acks, ackOf{creditKey{string(e.name), e.token}, len(e.frame)})
			continue
		}
		key := creditKey{name, e.token}
		if e.seq != 0 && origin == "" {
			origin = originID(src, inc)
		}
		if r.deliverFrom(inFrame{src, key, e.frame, origin, e.seq}, p) {
			acks = append(acks, ackOf{key, len(e.frame)})
		}
	}
	r.ackAll(src, acks)
	clear(acks)
	r.inAcks = acks
}

// batchEntry is one frame of a batch for one user; name and frame point
// into the batch's buffer.
type batchEntry struct {
	name  []byte
	token uint64
	frame []byte
	seq   uint64 // the origin sequence, if the entry carries one (retain.go)
}

// nextEntry decodes the entry at the front of b (not empty) and returns
// the rest of b.
func nextEntry(b []byte) (batchEntry, []byte, error) {
	nl := int(b[0])
	if len(b) < 1+nl+12 {
		return batchEntry{}, nil, errBadBatch
	}
	e := batchEntry{name: b[1 : 1+nl], token: binary.BigEndian.Uint64(b[1+nl:])}
	fl := int(binary.BigEndian.Uint32(b[1+nl+8:]))
	b = b[1+nl+12:]
	if fl&seqFlag != 0 { // an origin sequence follows (retain.go)
		if len(b) < 8 || binary.BigEndian.Uint64(b) == 0 {
			return batchEntry{}, nil, errBadBatch
		}
		e.seq, fl, b = binary.BigEndian.Uint64(b), fl&^seqFlag, b[8:]
	}
	if len(b) < fl {
		return batchEntry{}, nil, errBadBatch
	}
	e.frame = b[:fl:fl]
	return e, b[fl:], nil
}

// countEntries returns how many entries b holds, or errBadBatch if it is
// not a sequence of whole entries.
func countEntries(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		var err error
		if _, b, err = nextEntry(b); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ackOf is a number of bytes delivered to one remote user's session.
type ackOf struct {
	key creditKey
	n   int
}

// checkSeq counts and logs the batches from src that never came.
func (r *relay) checkSeq(src string, inc, seq uint64) {
	r.inMu.Lock()
	last := r.seqs[src]
	r.seqs[src] = seqState{inc, seq}
	r.inMu.Unlock()
	if last.inc == inc && seq != last.seq+1 && seq > last.seq {
		lost := seq - last.seq - 1
		r.m.gaps.WithLabelValues(src).Add(float64(lost))
		r.quiet.Warn("frames from a node were lost", "peer", src, "batches", lost, "after", last.seq)
	}
}

// deliverLocal queues one frame for a local user and reports true (its
// bytes are to be acked to the source node), or keeps it waiting (with
// the ones after it) while the user's queue has no room, to be acked once
// queued (or dropped).
func (r *relay) deliverLocal(src string, p server.Peer, key creditKey, frame []byte) bool {
	return r.deliverFrom(inFrame{src: src, key: key, frame: frame}, p)
}

// deliverFrom is deliverLocal for a frame that may carry its origin's
// sequence (retain.go).
func (r *relay) deliverFrom(f inFrame, p server.Peer) bool {
	key := f.key
	// The frame stays in the batch's buffer, which nothing else reuses.
	if r.nwaiting.Load() > 0 {
		r.inMu.Lock()
		if w := r.waiting[key.name]; w != nil {
			if w.peer == p {
				w.frames = append(w.frames, f)
				r.inMu.Unlock()
				return false
			}
			// The frames of an earlier session of the name, whose
			// Leave has not dropped them yet: they are not this one's.
			stale := r.dropWaitingLocked(key.name, w)
			r.inMu.Unlock()
			r.ackFrames(stale)
		} else {
			r.inMu.Unlock()
		}
	}
	retry, err := offerFrom(p, f.frame, f.origin, f.seq)
	if err != nil || retry == nil {
		return true
	}
	r.inMu.Lock()
	w := &waitingUser{peer: p, frames: []inFrame{f}}
	r.waiting[key.name] = w
	r.nwaiting.Add(1)
	r.inMu.Unlock()
	// Once the node stops, the frames wait for nothing: the node and
	// its users are going.
	r.spawn(func() { r.drainWaiting(key.name, w, retry) })
	return false
}

// dropWaitingLocked removes w, the waiting entry of name, and returns its
// frames, which the caller acks. r.inMu must be held.
func (r *relay) dropWaitingLocked(name string, w *waitingUser) []inFrame {
	w.gone = true
	frames := w.frames
	w.frames = nil
	delete(r.waiting, name)
	r.nwaiting.Add(-1)
	return frames
}

// drainWaiting offers a waiting user's frames again as its queue makes
// room, until none waits or the user is gone. It is started by
// deliverLocal and owned by the node. A frame it offers while the user
// leaves was acked by the leave, with the rest.
func (r *relay) drainWaiting(name string, w *waitingUser, retry <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond) // a peer that stops taking bytes closes no channel
	defer tick.Stop()
	for {
		select {
		case <-retry:
		case <-tick.C:
		case <-r.stop:
			return
		}
		for {
			r.inMu.Lock()
			if w.gone {
				r.inMu.Unlock()
				return
			}
			if len(w.frames) == 0 {
				r.dropWaitingLocked(name, w)
				r.inMu.Unlock()
				return
			}
			f := w.frames[0]
			r.inMu.Unlock()
			var err error
			retry, err = offerFrom(w.peer, f.frame, f.origin, f.seq)
			if err == nil && retry != nil {
				break
			}
			r.inMu.Lock()
			if w.gone {
				r.inMu.Unlock()
				return
			}
			w.frames = w.frames[1:]
			r.inMu.Unlock()
			r.ack(f.src, f.key, len(f.frame))
		}
	}
}

// localLeft drops the frames waiting for p, a local user who left, acking
// them so that their senders are not held back.
func (r *relay) localLeft(p server.Peer) {
	name := p.Name()
	r.inMu.Lock()
	var frames []inFrame
	if w := r.waiting[name]; w != nil && w.peer == p {
		frames = r.dropWaitingLocked(name, w)
	}
	r.inMu.Unlock()
	r.ackFrames(frames)
}

// ackFrames acks frames that were delivered or dropped.
func (r *relay) ackFrames(frames []inFrame) {
	bySrc := make(map[string][]ackOf)
	for _, f := range frames {
		bySrc[f.src] = append(bySrc[f.src], ackOf{f.key, len(f.frame)})
	}
	for src, acks := range bySrc {
		r.ackAll(src, acks)
	}
}

// ack notes n bytes delivered for key from src; acks go out in batches.
func (r *relay) ack(src string, key creditKey, n int) {
	r.ackAll(src, []ackOf{{key, n}})
}

// ackAll notes the bytes delivered from src, by user.
func (r *relay) ackAll(src string, delivered []ackOf) {
	if len(delivered) == 0 {
		return
	}
	r.inMu.Lock()
	defer r.inMu.Unlock()
	m := r.acks[src]
	if m == nil {
		m = make(map[creditKey]int)
		r.acks[src] = m
	}
	for _, a := range delivered {
		m[a.key] += a.n
	}
	if r.ackTick == nil {
		r.ackTick = time.AfterFunc(ackEvery, r.flushAcks)
	}
}

// flushAcks publishes the pending acks, one message per source node:
// entries of the name's length, the name, the token and the bytes.
func (r *relay) flushAcks() {
	r.inMu.Lock()
	acks := r.acks
	r.acks = make(map[string]map[creditKey]int)
	r.ackTick = nil
	r.inMu.Unlock()
	for src, m := range acks {
		var b []byte
		for k, n := range m {
			b = append(b, byte(len(k.name)))
			b = append(b, k.name...)
			b = binary.BigEndian.AppendUint64(b, k.token)
			b = binary.BigEndian.AppendUint32(b, uint32(n))
		}
		r.nc.Publish(r.subject(acksSubject, src), b)
	}
}

// acked returns the credits another node acked.
func (r *relay) acked(m *nats.Msg) {
	b := m.Data
	for len(b) > 0 {
		nl := int(b[0])
		if len(b) < 1+nl+12 {
			return
		}
		key := creditKey{string(b[1 : 1+nl]), binary.BigEndian.Uint64(b[1+nl:])}
		n := int(binary.BigEndian.Uint32(b[1+nl+8:]))
		b = b[1+nl+12:]
		r.returnCredit(key, n)
	}
}

// String describes a remote peer for logs.
func (p *remotePeer) String() string { return fmt.Sprintf("%s@%s", p.key.name, p.node) }
