package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/server/hubtest"
)

// TestBucketsDeletedAndRebuilt: both registry buckets deleted through a
// connection to the engine (issue 20: every user was cut off within 12 s,
// and no join succeeded for 30 s) are created again and refilled by the
// live nodes: nobody is cut off, the leases are renewed, the names stay
// unique, and joins work.
func TestBucketsDeletedAndRebuilt(t *testing.T) {
	nodes := testCluster(t, 2, 10)
	n0, n1 := nodes[0], nodes[1]
	alice := &evictee{Peer: hubtest.NewPeer("alice"), evicted: make(chan error, 1)}
	bob := &evictee{Peer: hubtest.NewPeer("bob"), evicted: make(chan error, 1)}
	if err := n0.hub.Join(alice, 10); err != nil {
		t.Fatal(err)
	}
	if err := n1.hub.Join(bob, 10); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(testEngines(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := n0.cfg.Name
	for _, b := range []string{name + namesBucket, name + nodesBucket} {
		if err := js.DeleteKeyValue(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()

	// The buckets come back with every live record: both users' names and
	// places, and both leases.
	names, err := waitBucket(ctx, js, name+namesBucket)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := waitBucket(ctx, js, name+nodesBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		kv  jetstream.KeyValue
		key string
	}{{names, userKey("alice")}, {names, userKey("bob")}, {names, cfgKey}, {leases, nodeKey(n0.cfg.Node)}, {leases, nodeKey(n1.cfg.Node)}} {
		if _, err := waitKey(ctx, k.kv, k.key); err != nil {
			t.Fatalf("%s never came back: %v", k.key, err)
		}
	}
	places := 0
	for places < 2 {
		keys, err := names.ListKeysFiltered(ctx, "s.>")
		if err != nil {
			t.Fatal(err)
		}
		places = 0
		for range keys.Keys() {
			places++
		}
		if ctx.Err() != nil {
			t.Fatalf("%d places came back, want 2", places)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("records back %v after the buckets were deleted", time.Since(deleted).Round(time.Millisecond))

	// Renewals succeed again (no fence is coming): each lease moves on.
	for _, n := range nodes {
		e, err := leases.Get(ctx, nodeKey(n.cfg.Node))
		if err != nil {
			t.Fatal(err)
		}
		for {
			e2, err := leases.Get(ctx, nodeKey(n.cfg.Node))
			if err == nil && e2.Revision() > e.Revision() {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s's lease is not renewed", n.cfg.Node)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, p := range []*evictee{alice, bob} {
		select {
		case err := <-p.evicted:
			t.Fatalf("%s cut off: %v", p.Name(), err)
		default:
		}
	}
	for _, n := range nodes {
		if n.hub.fenced.Load() {
			t.Fatalf("%s fenced", n.cfg.Node)
		}
	}
	// The names are still unique, and joins work.
	if err := n1.hub.Join(hubtest.NewPeer("alice"), 10); !errors.Is(err, server.ErrNameTaken) {
		t.Fatalf("alice joined again on n1: %v", err)
	}
	if err := n1.hub.Join(hubtest.NewPeer("carol"), 10); err != nil {
		t.Fatalf("a join after the rebuild: %v", err)
	}
	want := []string{"alice", "bob", "carol"}
	for _, n := range nodes {
		for got := n.hub.Users(); !slices.Equal(got, want); got = n.hub.Users() {
			if ctx.Err() != nil {
				t.Fatalf("%s lists %q, want %q", n.cfg.Node, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitBucket waits until the bucket exists and returns it.
func waitBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	return poll(ctx, func() (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
}

// waitKey waits until kv holds key.
func waitKey(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	return poll(ctx, func() (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) })
}

// poll asks get every 50 ms until it answers without an error or ctx
// ends.
func poll[T any](ctx context.Context, get func() (T, error)) (T, error) {
	for {
		v, err := get()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
