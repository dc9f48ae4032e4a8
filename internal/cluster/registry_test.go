package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gochat/chat/internal/server/hubtest"
)

// entry is a names bucket entry as the watch delivers it.
type entry struct {
	key string
	val []byte
	rev uint64
	op  jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return "test" }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.val }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return time.Now() }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }

// TestNotePlaceTaken: a place a join found taken in the bucket is held
// by a placeholder only while the watch has not brought the record that
// took it; the watch's record then replaces the placeholder and its
// removal frees the place. A record the watch has already brought (and,
// the cache lacking it, removed) leaves no placeholder, which nothing
// would ever free.
func TestNotePlaceTaken(t *testing.T) {
	r := &registry{maxClients: 10, slots: make(map[int]slotEntry), taken: make([]uint64, 1), users: make(map[string]userEntry)}
	other := slotEntry{node: "other", inc: 1, token: 2}.value()
	r.applyName(entry{key: slotKey(3), val: other, rev: 5, op: jetstream.KeyValuePut})
	r.applyName(entry{key: slotKey(3), rev: 6, op: jetstream.KeyValueDelete})

	r.notePlaceTaken(3, 5) // the watch is past it
	if got := r.slotsTaken(); got != 0 {
		t.Fatalf("%d places taken after noting a record the watch had brought and removed, want 0", got)
	}

	r.notePlaceTaken(4, 7) // the watch is not there yet
	if s, ok := r.slots[4]; !ok || !s.placeholder() {
		t.Fatalf("place 4 = %+v, %v; want a placeholder", s, ok)
	}
	r.applyName(entry{key: slotKey(4), val: other, rev: 7, op: jetstream.KeyValuePut})
	if s := r.slots[4]; s.placeholder() || s.node != "other" {
		t.Fatalf("place 4 = %+v after the watch brought its record, want other's", s)
	}
	r.applyName(entry{key: slotKey(4), rev: 8, op: jetstream.KeyValueDelete})
	if got := r.slotsTaken(); got != 0 {
		t.Fatalf("%d places taken after the watch removed the record, want 0", got)
	}
}

// placeRaceKV is the names bucket where another node takes place 0 just
// before a join's Create, and lets it go again, the watch applying both,
// before the join has looked at its cache.
type placeRaceKV struct {
	jetstream.KeyValue
	created, got sync.Once
	take         func(key string) uint64
	leave        func(key string, rev uint64)
	rev          uint64
}

func (k *placeRaceKV) Create(ctx context.Context, key string, v []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if key == slotKey(0) {
		k.created.Do(func() { k.rev = k.take(key) })
	}
	return k.KeyValue.Create(ctx, key, v, opts...)
}

func (k *placeRaceKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := k.KeyValue.Get(ctx, key)
	if key == slotKey(0) {
		k.got.Do(func() { k.leave(key, k.rev) })
	}
	return e, err
}

// TestJoinLosesPlaceRace: a join that loses its place to another node,
// whose user leaves again before the join looks at its cache, takes the
// place afterwards; it once left a placeholder there that nothing
// removed, and an empty cluster of one place refused every join for good.
func TestJoinLosesPlaceRace(t *testing.T) {
	nodes := testCluster(t, 1, 1)
	n := nodes[0]
	bucket := n.hub.reg.names
	n.hub.reg.names = &placeRaceKV{KeyValue: bucket,
		take: func(key string) uint64 {
			rev, err := bucket.Create(context.Background(), key, slotEntry{node: "other", inc: 1, token: 2}.value())
			if err != nil {
				t.Error(err)
			}
			return rev
		},
		leave: func(key string, rev uint64) {
			if err := bucket.Delete(context.Background(), key, jetstream.LastRevision(rev)); err != nil {
				t.Error(err)
			}
			settle(t, nodes) // the watch has applied the put and the delete
		}}
	al := hubtest.NewPeer("al")
	if err := n.Hub().Join(al, 1); err != nil {
		t.Fatalf("join after the place was let go: %v", err)
	}
	n.Hub().Leave(al)
	settle(t, nodes)
	if got := n.hub.reg.slotsTaken(); got != 0 {
		t.Fatalf("%d places taken in an empty cluster, want 0", got)
	}
	if err := n.Hub().Join(hubtest.NewPeer("bob"), 1); err != nil {
		t.Fatalf("join into an empty cluster: %v", err)
	}
}

// flakyKV fails its first Creates as a bucket without a leader yet does.
type flakyKV struct {
	jetstream.KeyValue
	fails   int // Creates still to fail
	creates int
}

func (k *flakyKV) Create(ctx context.Context, key string, v []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	k.creates++
	if k.fails > 0 {
		k.fails--
		return 0, nats.ErrNoStreamResponse
	}
	return k.KeyValue.Create(ctx, key, v, opts...)
}

// TestCheckCapWaitsForTheBucket: the check of the cluster's client cap at
// startup tries again while the bucket does not answer (just made, its
// leader not elected: "no response from stream"), instead of failing the
// node's start (which CI saw), and still refuses another cap.
func TestCheckCapWaitsForTheBucket(t *testing.T) {
	r := testCluster(t, 1, 10)[0].hub.reg
	bucket := r.names
	defer func() { r.names = bucket }()
	flaky := &flakyKV{KeyValue: bucket, fails: 2}
	r.names = flaky
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.checkCap(ctx); err != nil {
		t.Fatalf("checkCap: %v", err)
	}
	if flaky.creates != 3 {
		t.Errorf("%d attempts, want 3", flaky.creates)
	}
	r.maxClients = 11
	defer func() { r.maxClients = 10 }()
	if err := r.checkCap(ctx); !errors.Is(err, errCapMismatch) {
		t.Fatalf("checkCap with another cap: %v, want %v", err, errCapMismatch)
	}
}

// TestKeysParse: userOf and slotOf undo userKey and slotKey, and refuse
// the keys of other kinds and those that do not decode.
func TestKeysParse(t *testing.T) {
	for _, name := range []string{"alice", "ünïcode name", "a.b/c"} {
		if got, ok := userOf(userKey(name)); !ok || got != name {
			t.Errorf("userOf(userKey(%q)) = %q, %v", name, got, ok)
		}
	}
	for _, i := range []int{0, 7, 99999} {
		if got, ok := slotOf(slotKey(i)); !ok || got != i {
			t.Errorf("slotOf(slotKey(%d)) = %d, %v", i, got, ok)
		}
	}
	for _, key := range []string{cfgKey, "s.7", "u.!!", nodeKey("n1"), ""} {
		if name, ok := userOf(key); ok {
			t.Errorf("userOf(%q) = %q, true; want false", key, name)
		}
	}
	for _, key := range []string{cfgKey, "u.YQ", "s.x", "s.", nodeKey("n1"), ""} {
		if i, ok := slotOf(key); ok {
			t.Errorf("slotOf(%q) = %d, true; want false", key, i)
		}
	}
}
