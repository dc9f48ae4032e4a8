package cluster

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// writeWindow is how many registry writes a node has in flight at once.
// Writes beyond it wait in the node's queue, where nothing times out: a
// join waiting behind others is never given up for it (issue 21). Within
// the window every write is answered in about window / rate (a few tens of
// milliseconds at the rates of docs/PERFORMANCE.md, "Join storms"), far
// below kvTimeout. Before, every join had its own synchronous writes in
// flight: 19,000 at each of three nodes at once queued for longer than
// kvTimeout in the engine, timed out, were tried again on top of the
// others, and 2,488 of 57,000 joins were given up.
const writeWindow = 512

// errStalled fails a write at once while the registry has answered nothing
// for joinPatience: it has no majority, and a join is better answered
// (try again) than left waiting.
var errStalled = errors.New("the registry has answered nothing for a while")

// writeOp is one write to the names bucket: key set to val if its last
// revision is still expect (0: the key was never written, which makes
// it a Create), or, with del, a delete marker put on key if its last
// revision is expect. Its result comes on done.
type writeOp struct {
	key    string
	val    []byte
	expect uint64
	del    bool
	done   chan writeResult // buffered
}

// writeResult is a write's outcome: the revision it was stored at, or
// why not. isExists(err) holds when the key's revision was not the one
// expected.
type writeResult struct {
	rev uint64
	err error
}

// writer pipelines the writes of a node to the names bucket: each is
// published without waiting for the one before (JetStream's asynchronous
// publish with an expected last subject sequence), at most writeWindow at
// once, in the order they were queued, and their answers are matched in
// the same order. The engine takes them in one stream, so a queue of
// writes costs it what the same writes cost one at a time, without a
// round trip between each.
type writer struct {
	// Set at construction, read-only.
	nodeInfo
	js     jetstream.JetStream // its own, for its publish timeout
	prefix string              // the names bucket's subjects, "$KV.<bucket>."

	mu     sync.Mutex
	queue  []*writeOp    // waiting for the window; guarded by mu
	wake   chan struct{} // has a token when queue grew
	window chan struct{} // a token per write in flight
	acks   chan pending  // the writes in flight, in publishing order

	// unanswered is since when the engine has owed an answer without
	// giving any (Unix ns; 0: it owes none); guarded by mu.
	unanswered int64
	// peak is the most writes that were in flight at once; guarded by
	// mu. Tests read it: the window is what keeps a storm's writes from
	// timing out in the engine (TestJoinStormNoneGivenUp).
	peak int
}

type pending struct {
	op  *writeOp
	paf jetstream.PubAckFuture
}

func newWriter(n nodeInfo, bucket string) (*writer, error) {
	js, err := jetstream.New(n.nc, jetstream.WithPublishAsyncTimeout(kvTimeout), jetstream.WithPublishAsyncMaxPending(2*writeWindow))
	if err != nil {
		return nil, err
	}
	return &writer{
		nodeInfo: n, js: js, prefix: "$KV." + bucket + ".",
		wake:   make(chan struct{}, 1),
		window: make(chan struct{}, writeWindow),
		acks:   make(chan pending, writeWindow),
	}, nil
}

// start runs the writer's goroutines, owned by the node, until it stops.
func (w *writer) start() {
	w.spawn(w.publish)
	w.spawn(w.collect)
}

// submit queues op. Its result comes on op.done (or never, if the node
// stops first).
func (w *writer) submit(op *writeOp) {
	if op.done == nil {
		op.done = make(chan writeResult, 1)
	}
	w.mu.Lock()
	w.queue = append(w.queue, op)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stalled reports whether the registry has answered nothing for
// joinPatience while writes were in flight.
func (w *writer) stalled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stalledLocked(time.Now())
}

func (w *writer) stalledLocked(now time.Time) bool {
	return w.unanswered != 0 && now.UnixNano()-w.unanswered > int64(joinPatience)
}

// next takes the first queued write, waiting for one.
func (w *writer) next() (*writeOp, bool) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			op := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			if len(w.queue) == 0 {
				w.queue = nil // let the array go after a storm
			}
			w.mu.Unlock()
			return op, true
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-w.stop:
			return nil, false
		}
	}
}

// publish publishes the queued writes as the window allows.
func (w *writer) publish() {
	for {
		op, ok := w.next()
		if !ok {
			return
		}
		select {
		case w.window <- struct{}{}:
		case <-w.stop:
			return
		}
		w.mu.Lock()
		w.peak = max(w.peak, len(w.window))
		now := time.Now()
		// While the engine is silent, one write at a time probes it;
		// the others are answered at once.
		if w.stalledLocked(now) && len(w.window) > 1 {
			w.mu.Unlock()
			<-w.window
			op.done <- writeResult{err: errStalled}
			continue
		}
		if w.unanswered == 0 {
			w.unanswered = now.UnixNano()
		}
		w.mu.Unlock()
		paf, err := w.js.PublishMsgAsync(w.msg(op))
		if err != nil {
			<-w.window
			op.done <- writeResult{err: err}
			continue
		}
		select {
		case w.acks <- pending{op, paf}:
		case <-w.stop:
			return
		}
	}
}

// msg returns the message of op: a KV put or delete marker with the
// expected last revision of its key.
func (w *writer) msg(op *writeOp) *nats.Msg {
	m := &nats.Msg{Subject: w.prefix + op.key, Header: nats.Header{}, Data: op.val}
	if op.del {
		m.Data = nil
		m.Header.Set("KV-Operation", "DEL")
	}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(op.expect, 10))
	return m
}

// collect waits for the answers of the writes in flight, in order.
func (w *writer) collect() {
	for {
		var p pending
		select {
		case p = <-w.acks:
		case <-w.stop:
			return
		}
		var res writeResult
		select {
		case ack := <-p.paf.Ok():
			res.rev = ack.Sequence
		case res.err = <-p.paf.Err():
		case <-w.stop:
			return
		}
		<-w.window
		var apiErr *jetstream.APIError
		if res.err == nil || errors.As(res.err, &apiErr) {
			// An answer: the writes still in flight are owed from now.
			w.mu.Lock()
			now := time.Now().UnixNano()
			w.unanswered = 0
			if len(w.window) > 0 {
				w.unanswered = now
			}
			w.mu.Unlock()
		}
		p.op.done <- res
	}
}

// wait returns the result of op, or an error if the node stops first.
func (w *writer) wait(op *writeOp) writeResult {
	select {
	case r := <-op.done:
		return r
	case <-w.stop:
		return writeResult{err: errors.New("the node is stopping")}
	}
}
