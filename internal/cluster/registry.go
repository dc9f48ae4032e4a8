package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The registry's buckets, after the cluster's name, and keys
// (docs/CLUSTER.md, "The registry").
const (
	namesBucket = "_names" // cfg, s.<slot>, u.<name>: no TTL
	nodesBucket = "_nodes" // n.<node>: leases, with a TTL
	cfgKey      = "cfg"
)

// maxNodes bounds the leases a node keeps track of, and so the nodes it
// hears and the metric series it keeps per peer: what it takes from the
// engine must not grow without bound (issue 20: 500 forged heartbeats
// added 2,000 series to a node).
const maxNodes = 256

// Errors of the registry.
var (
	errCapMismatch = errors.New("client cap differs from the cluster's")
	errNodeTaken   = errors.New("node name in use by a live node")
)

// b64 encodes names for keys and subjects, which allow only a few
// characters; usernames are arbitrary UTF-8.
var b64 = base64.RawURLEncoding

func userKey(name string) string { return "u." + b64.EncodeToString([]byte(name)) }
func slotKey(i int) string       { return "s." + strconv.Itoa(i) }
func nodeKey(node string) string { return "n." + b64.EncodeToString([]byte(node)) }

// userOf and slotOf undo userKey and slotKey: ok is false for a key of
// another kind or one that does not decode.
func userOf(key string) (name string, ok bool) {
	enc, ok := strings.CutPrefix(key, "u.")
	if !ok {
		return "", false
	}
	raw, err := b64.DecodeString(enc)
	return string(raw), err == nil
}

func slotOf(key string) (int, bool) {
	n, ok := strings.CutPrefix(key, "s.")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil
}

// userEntry is the registry's record of a joined user. Its place under
// the cap has a record of its own.
type userEntry struct {
	node    string
	inc     uint64 // the node's incarnation
	token   uint64 // this session's, so that a new one never gets the old one's frames
	rev     uint64
	created int64 // when the engine stored it, Unix ns (57,000 records: 16 bytes less each than a time.Time)
	resume  resumeInfo
}

func (e userEntry) value() []byte {
	if e.resume.hash != "" {
		return e.resume.value(e.inc, e.token, e.node)
	}
	return sessionValue(e.inc, e.token, e.node)
}

func parseUser(v []byte) (userEntry, error) {
	if isResumeValue(v) {
		return parseResumeUser(v)
	}
	inc, token, node, err := parseSession(v)
	if err != nil {
		return userEntry{}, fmt.Errorf("user entry: %w", err)
	}
	return userEntry{node: node, inc: inc, token: token}, nil
}

// sessionValue is the value of a user's or a place's record: the node's
// incarnation, the session's token, the node.
func sessionValue(inc, token uint64, node string) []byte {
	return fmt.Appendf(nil, "%x %x %s", inc, token, node)
}

func parseSession(v []byte) (inc, token uint64, node string, err error) {
	f := strings.SplitN(string(v), " ", 3)
	if len(f) != 3 {
		return 0, 0, "", fmt.Errorf("%q", v)
	}
	var err1, err2 error
	inc, err1 = strconv.ParseUint(f[0], 16, 64)
	token, err2 = strconv.ParseUint(f[1], 16, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, "", fmt.Errorf("%q: %w", v, err)
	}
	return inc, token, f[2], nil
}

// slotEntry is the registry's record of a taken place under the cap.
type slotEntry struct {
	node    string
	inc     uint64
	token   uint64 // the joining session's, so that a join knows its own record
	rev     uint64
	created int64 // Unix ns
}

func (e slotEntry) value() []byte { return sessionValue(e.inc, e.token, e.node) }

// placeholder reports whether e stands for another node's record that a
// join found in the bucket before the watch brought it (see claimSlot).
func (e slotEntry) placeholder() bool { return e.node == "" }

func parseSlot(v []byte) (slotEntry, error) {
	inc, token, node, err := parseSession(v)
	if err != nil {
		return slotEntry{}, fmt.Errorf("slot entry: %w", err)
	}
	return slotEntry{node: node, inc: inc, token: token}, nil
}

// leaseEntry is a node's lease.
type leaseEntry struct {
	inc     uint64
	addr    string
	rev     uint64
	created time.Time // when this revision was stored (the engine's clock)
}

func (e leaseEntry) value() []byte { return fmt.Appendf(nil, "%x %s", e.inc, e.addr) }

func parseLease(v []byte) (leaseEntry, error) {
	inc, addr, _ := strings.Cut(string(v), " ")
	n, err := strconv.ParseUint(inc, 16, 64)
	if err != nil {
		return leaseEntry{}, fmt.Errorf("lease %q", v)
	}
	return leaseEntry{inc: n, addr: addr}, nil
}

// registry is the node's view of the buckets: the decisions go through
// Create, Update and Delete with revision checks; the cache, kept by two
// watches, serves lists, lookups and the choice of a free place.
type registry struct {
	// Set at construction, read-only.
	nodeInfo
	names      jetstream.KeyValue
	nodes      jetstream.KeyValue
	maxClients int
	namesReady chan struct{} // closed once the names watch has caught up
	nodesReady chan struct{} // closed once the nodes watch has caught up

	watchMu     sync.Mutex           // guards the watches, which a rebuilt bucket replaces
	namesWatch  jetstream.KeyWatcher // guarded by watchMu
	leasesWatch jetstream.KeyWatcher // guarded by watchMu
	namesDone   chan struct{}        // closed when the names watch's goroutine ends; guarded by watchMu
	leasesDone  chan struct{}        // the same for the leases watch; guarded by watchMu

	mu        sync.RWMutex
	users     map[string]userEntry                         // by name; guarded by mu
	slots     map[int]slotEntry                            // taken places; guarded by mu
	taken     []uint64                                     // bit i set: place i taken; guarded by mu
	leases    map[string]leaseEntry                        // by node; guarded by mu
	nodeNames map[string]string                            // one copy of each node name the records hold; guarded by mu
	onUser    func(name string, u userEntry, present bool) // called under mu when a user's record changes (u: the old record when gone)
	onNode    func(node string, l leaseEntry, gone bool)   // called under mu when a lease changes
	onRenew   func(node string, l leaseEntry)              // called under mu when a lease is renewed
	onMove    func(name string, old, u userEntry)          // called under mu when a session's record moves to another node

	namesRev uint64 // revision of the last names entry the watch applied; guarded by mu

	// The revisions of the delete markers that keys end in, as far as the
	// cache knows: a write that takes a name or a place again must expect
	// its key's last revision, and a join storm cannot afford to ask the
	// engine for it first (issue 21). Guarded by mu.
	userTombs map[string]uint64 // by name
	slotTombs []uint64          // by place

	testHookKey func(key string) // if set, called under mu for other keys of the names bucket
}

// openRegistry creates or opens the buckets, retrying while JetStream is
// not ready (a cluster still forming), checks the client cap, and starts
// the watches.
func openRegistry(ctx context.Context, n nodeInfo, js jetstream.JetStream, cfg Config) (*registry, error) {
	r := &registry{
		nodeInfo:   n,
		maxClients: cfg.MaxClients,
		users:      make(map[string]userEntry),
		slots:      make(map[int]slotEntry),
		taken:      make([]uint64, (cfg.MaxClients+63)/64),
		leases:     make(map[string]leaseEntry),
		namesReady: make(chan struct{}),
		nodesReady: make(chan struct{}),
	}
	var err error
	for attempt := 0; ; attempt++ {
		if r.names == nil {
			r.names, err = openBucket(ctx, js, namesConfig(cfg))
		}
		if err == nil && r.nodes == nil {
			r.nodes, err = openBucket(ctx, js, nodesConfig(cfg))
		}
		if err == nil {
			break
		}
		if attempt%5 == 0 {
			n.log.Info("waiting for the cluster's JetStream (a majority of its servers must be up)", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the registry is not available: %w", err)
		case <-time.After(time.Second):
		}
	}
	if err := r.checkCap(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// namesConfig and nodesConfig are the settings of the registry's buckets.
func namesConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:   c.Name + namesBucket,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: c.Replicas,
	}
}

func nodesConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         c.Name + nodesBucket,
		History:        1,
		TTL:            leaseTTL,
		LimitMarkerTTL: time.Second,
		Storage:        jetstream.MemoryStorage,
		Replicas:       c.Replicas,
	}
}

// openBucket creates the bucket of cfg, or opens it if it exists.
// Creating a bucket that exists with the same settings succeeds, so
// several nodes may race to create it. (Asking first whether it exists
// can hang for seconds while another node creates it.)
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*kvTimeout)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Made with other settings (another version, other replicas).
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		err = fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, err
}

// checkCap records the client cap in the registry, or checks that the
// one recorded there is the same.
func (r *registry) checkCap(ctx context.Context) error {
	want := "max-clients=" + strconv.Itoa(r.maxClients)
	for {
		kctx, cancel := context.WithTimeout(ctx, kvTimeout)
		_, err := r.names.Create(kctx, cfgKey, []byte(want))
		var e jetstream.KeyValueEntry
		if isExists(err) {
			e, err = r.names.Get(kctx, cfgKey)
		}
		cancel()
		if e == nil && err == nil {
			return nil // this node set the cap
		}
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			// A bucket just made may have no leader yet ("no response
			// from stream"): try again while the wait lasts.
			if err := pause(ctx, err); err != nil {
				return fmt.Errorf("checking the client cap: %w", err)
			}
			continue
		}
		if got := string(e.Value()); got != want {
			return fmt.Errorf("%w: the cluster has %s, this node --max-clients=%d", errCapMismatch, strings.TrimPrefix(got, "max-clients="), r.maxClients)
		}
		return nil
	}
}

// isExists reports whether err is a failed create or update: the key
// exists, or its revision moved on.
func isExists(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// watch starts the two watches; their goroutines, owned by the node, end
// when the node stops.
func (r *registry) watch(ctx context.Context) error {
	// The watches live as long as the node (a watch ends with its
	// context); ctx bounds only the wait for their initial values.
	for r.namesWatch == nil || r.leasesWatch == nil {
		var err error
		if r.namesWatch == nil {
			r.namesWatch, err = r.names.WatchAll(r.ctx)
		}
		if err == nil && r.leasesWatch == nil {
			r.leasesWatch, err = r.nodes.WatchAll(r.ctx)
		}
		if err != nil {
			// A bucket just made may have no leader yet: try again
			// while the wait lasts.
			if err := pause(ctx, err); err != nil {
				if r.namesWatch != nil {
					r.namesWatch.Stop()
				}
				return fmt.Errorf("watching the registry: %w", err)
			}
		}
	}
	r.watchMu.Lock()
	r.namesDone = r.spawnFollow(r.namesWatch, r.namesReady, r.applyName)
	r.leasesDone = r.spawnFollow(r.leasesWatch, r.nodesReady, r.applyLease)
	r.watchMu.Unlock()
	for _, ch := range []chan struct{}{r.namesReady, r.nodesReady} {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("the registry did not load: %w", ctx.Err())
		}
	}
	return nil
}

// spawnFollow runs follow in a goroutine owned by the node and returns a
// channel closed when it ends.
func (r *registry) spawnFollow(w jetstream.KeyWatcher, ready chan struct{}, apply func(jetstream.KeyValueEntry)) chan struct{} {
	done := make(chan struct{})
	if !r.spawn(func() {
		defer close(done)
		r.follow(w, ready, apply)
	}) {
		close(done)
	}
	return done
}

// follow applies the entries of w until the node stops; ready is closed
// when the initial values are in.
func (r *registry) follow(w jetstream.KeyWatcher, ready chan struct{}, apply func(jetstream.KeyValueEntry)) {
	once := sync.OnceFunc(func() { close(ready) })
	defer once()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				once()
				continue
			}
			apply(e)
		case <-r.stop:
			return
		}
	}
}

// internLocked returns one shared copy of node, so that the records of
// 57,000 users do not each keep a copy (with the value it was cut from).
func (r *registry) internLocked(node string) string {
	if s, ok := r.nodeNames[node]; ok {
		return s
	}
	if r.nodeNames == nil {
		r.nodeNames = make(map[string]string)
	}
	node = strings.Clone(node)
	r.nodeNames[node] = node
	return node
}

// tombsLocked makes the maps of delete markers if they are not yet.
func (r *registry) tombsLocked() {
	if r.userTombs == nil {
		r.userTombs = make(map[string]uint64)
	}
	if r.slotTombs == nil {
		r.slotTombs = make([]uint64, r.maxClients)
	}
}

func (r *registry) applyName(e jetstream.KeyValueEntry) {
	key := e.Key()
	del := e.Operation() != jetstream.KeyValuePut
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tombsLocked()
	r.namesRev = max(r.namesRev, e.Revision())
	switch {
	case strings.HasPrefix(key, "u."):
		name, ok := userOf(key)
		if !ok {
			return
		}
		if del {
			if e.Revision() > r.userTombs[name] {
				r.userTombs[name] = e.Revision()
			}
			if old, ok := r.users[name]; ok && old.rev <= e.Revision() {
				delete(r.users, name)
				r.notifyUser(name, old, false)
			}
			return
		}
		u, err := parseUser(e.Value())
		if err != nil {
			r.quiet.Warn("bad registry entry", "key", key, "err", err)
			return
		}
		u.node = r.internLocked(u.node)
		u.rev, u.created = e.Revision(), e.Created().UnixNano()
		if old, ok := r.users[name]; ok && old.rev > u.rev {
			return // a newer revision was recorded by our own join
		}
		if t, ok := r.userTombs[name]; ok && t < u.rev {
			delete(r.userTombs, name)
		}
		old, had := r.users[name]
		r.users[name] = u
		if had && old.token == u.token && old.node != u.node && r.onMove != nil {
			r.onMove(name, old, u) // a resume on another node (resume.go)
			return
		}
		r.notifyUser(name, u, true)
	case strings.HasPrefix(key, "s."):
		i, ok := slotOf(key)
		if !ok || i < 0 || i >= r.maxClients {
			return
		}
		if del {
			r.slotTombs[i] = max(r.slotTombs[i], e.Revision())
			if old, ok := r.slots[i]; ok && old.rev <= e.Revision() {
				r.freeLocked(i)
			}
			return
		}
		s, err := parseSlot(e.Value())
		if err != nil {
			return
		}
		s.node = r.internLocked(s.node)
		s.rev, s.created = e.Revision(), e.Created().UnixNano()
		if old, ok := r.slots[i]; ok && old.rev > s.rev {
			return
		}
		r.takeLocked(i, s)
	default:
		if r.testHookKey != nil {
			r.testHookKey(key)
		}
	}
}

func (r *registry) notifyUser(name string, u userEntry, present bool) {
	if r.onUser != nil {
		r.onUser(name, u, present)
	}
}

func (r *registry) applyLease(e jetstream.KeyValueEntry) {
	raw, err := b64.DecodeString(strings.TrimPrefix(e.Key(), "n."))
	if err != nil {
		return
	}
	node := string(raw)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		if old, ok := r.leases[node]; ok && old.rev <= e.Revision() {
			delete(r.leases, node)
			if r.onNode != nil {
				r.onNode(node, old, true)
			}
		}
		return
	}
	l, err := parseLease(e.Value())
	if err != nil {
		return
	}
	l.rev, l.created = e.Revision(), e.Created()
	if _, ok := r.leases[node]; !ok && (len(r.leases) >= maxNodes || !validNodeName(node)) {
		r.log.Warn("ignoring a lease: a bad node name, or more nodes than a cluster may have", "nodes", len(r.leases), "max", maxNodes)
		return
	}
	old, known := r.leases[node]
	r.leases[node] = l
	// A renewal (every node's, every second) changes nothing the hub
	// looks at; calling onNode for it made every list after it sorted
	// anew and swept every record again, three times a second with three
	// nodes: with 57,000 users, 16 % of a node's CPU in a join storm went
	// to sweeps (issue 21). It only counts as hearing the node (onRenew).
	switch {
	case r.onNode != nil && (!known || old.inc != l.inc):
		r.onNode(node, l, false)
	case r.onRenew != nil:
		r.onRenew(node, l)
	}
}

func (r *registry) takeLocked(i int, s slotEntry) {
	r.slots[i] = s
	r.taken[i/64] |= 1 << (i % 64)
}

func (r *registry) freeLocked(i int) {
	delete(r.slots, i)
	r.taken[i/64] &^= 1 << (i % 64)
}

// freeSlot returns a place not taken as far as the cache knows, starting
// the search at a random one so that racing joins pick different places;
// -1 if all are taken.
func (r *registry) freeSlot() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.freeSlotLocked()
}

func (r *registry) freeSlotLocked() int {
	if len(r.slots) >= r.maxClients {
		return -1
	}
	words := len(r.taken)
	start := rand.IntN(words)
	for k := range words {
		w := (start + k) % words
		free := ^r.taken[w]
		if w == words-1 && r.maxClients%64 != 0 {
			free &= 1<<(r.maxClients%64) - 1
		}
		if free == 0 {
			continue
		}
		// A random free bit of the word.
		skip := rand.IntN(bits.OnesCount64(free))
		for ; skip > 0; skip-- {
			free &= free - 1
		}
		return w*64 + bits.TrailingZeros64(free)
	}
	return -1
}

// notePlaceTaken notes place i as taken by the record at revision rev,
// which a join found in the bucket, unless the watch has brought that
// record already: the watch applies the bucket in order, so the record
// (and its removal, if the cache lacks it) are then known. Otherwise the
// place is held by a placeholder until the watch brings the record.
func (r *registry) notePlaceTaken(i int, rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.slots[i]; !ok && rev > r.namesRev {
		r.takeLocked(i, slotEntry{rev: rev})
	}
}

// slotsTaken returns how many places are taken.
func (r *registry) slotsTaken() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.slots)
}

// recordJoin puts a user this node has just admitted in the cache, before
// the watch brings it.
func (r *registry) recordJoin(name string, u userEntry, slot int, s slotEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.slots[slot]; !ok || old.rev < s.rev {
		r.takeLocked(slot, s)
	}
	if old, ok := r.users[name]; !ok || old.rev < u.rev {
		r.users[name] = u
		r.notifyUser(name, u, true)
	}
}

// recordLeave takes a user this node let go of out of the cache, before
// the watch says so, if the cache still holds that session.
func (r *registry) recordLeave(name string, token uint64, slot int, slotRev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.users[name]; ok && u.token == token {
		delete(r.users, name)
		r.notifyUser(name, u, false)
	}
	if s, ok := r.slots[slot]; ok && s.rev == slotRev {
		r.freeLocked(slot)
	}
}

// freshLeases returns the nodes whose leases were written within d, with
// their incarnations.
func (r *registry) freshLeases(d time.Duration) map[string]uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fresh := make(map[string]uint64, len(r.leases))
	for node, l := range r.leases {
		if time.Since(l.created) < d {
			fresh[node] = l.inc
		}
	}
	return fresh
}

// orphans returns the records, older than minAge, that no live session
// holds: those of nodes without a lease in the record's incarnation, and
// this node's own (self, incarnation inc) whose session token is not in
// held (left by a join whose answers were lost, or a failed delete).
func (r *registry) orphans(self string, inc uint64, held map[uint64]bool, minAge time.Duration) []pendingDelete {
	orphan := func(node string, rinc, token uint64) bool {
		if node == self && rinc == inc {
			return !held[token]
		}
		lease, ok := r.leases[node]
		return !ok || lease.inc != rinc
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var recs []pendingDelete
	for name, u := range r.users {
		if orphan(u.node, u.inc, u.token) && time.Since(time.Unix(0, u.created)) > minAge {
			recs = append(recs, pendingDelete{userKey(name), u.rev})
		}
	}
	for i, s := range r.slots {
		if !s.placeholder() && orphan(s.node, s.inc, s.token) && time.Since(time.Unix(0, s.created)) > minAge {
			recs = append(recs, pendingDelete{slotKey(i), s.rev})
		}
	}
	return recs
}

// leased reports whether node, in incarnation inc, holds a lease: only
// such a node's heartbeats and frames are taken.
func (r *registry) leased(node string, inc uint64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	l, ok := r.leases[node]
	return ok && l.inc == inc
}

// user returns the cached record of name.
func (r *registry) user(name string) (userEntry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	u, ok := r.users[name]
	return u, ok
}

// snapshot returns the names of the cached users that visible accepts,
// sorted.
func (r *registry) snapshot(visible func(userEntry) bool) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.users))
	for name, u := range r.users {
		if visible(u) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// kvCtx returns a context bounding one registry operation, ended early if
// the node stops.
func (r *registry) kvCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, kvTimeout)
}

// reserveSlot picks a free place for the join of token and holds it in
// the cache until the join's write is answered, so that the node's other
// joins, whose writes are in flight at the same time, pick other places.
// It returns the place and the revision its key must still have (its
// delete marker's, or 0), or -1 if none is free.
func (r *registry) reserveSlot(token uint64) (int, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tombsLocked()
	i := r.freeSlotLocked()
	if i < 0 {
		return -1, 0
	}
	r.takeLocked(i, slotEntry{token: token}) // a placeholder of revision 0: any record of the place replaces it
	return i, r.slotTombs[i]
}

// unreserve gives back place i if the join of token still holds it.
func (r *registry) unreserve(i int, token uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.slots[i]; ok && s.placeholder() && s.rev == 0 && s.token == token {
		r.freeLocked(i)
	}
}

// slotRefused settles the reservation of place i by the join of token,
// whose write expecting revision expect was refused: the key had another
// revision. It reports whether the place is the join's own after all (an
// earlier attempt was stored, its answer lost; then rev is the record's
// revision), and otherwise whether the same place is worth trying again
// at revision again (the cache has since learnt of a newer delete
// marker). If neither, the place is someone's record that the watch has
// not brought yet: the watch applies the bucket in order, so that record
// is later than anything applied, and the place is held by a placeholder
// of the next revision until the record (or its removal) comes.
func (r *registry) slotRefused(i int, token, expect uint64) (own bool, rev uint64, retry bool, again uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tombsLocked()
	s, ok := r.slots[i]
	switch {
	case ok && !s.placeholder():
		if s.token == token && s.node == r.self && s.inc == r.inc {
			return true, s.rev, false, 0
		}
		return false, 0, false, 0 // taken
	case r.slotTombs[i] != expect:
		r.takeLocked(i, slotEntry{token: token})
		return false, 0, true, r.slotTombs[i]
	case ok && s.rev > 0:
		return false, 0, false, 0 // a placeholder already waits for it
	}
	r.takeLocked(i, slotEntry{rev: r.namesRev + 1})
	return false, 0, false, 0
}

// nameExpect returns the revision the key of name must still have for a
// join to take it: its delete marker's, or 0.
func (r *registry) nameExpect(name string) uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.userTombs[name]
}

// nameRefused tells, for a join of token whose write of name expecting
// revision expect was refused, whether the name is the join's own after
// all (then rev is its record's revision), another's as far as the cache
// knows (taken), or worth trying again at revision again: the cache has
// since learnt of a newer delete marker. If none holds, the cache does
// not know yet what holds the name.
func (r *registry) nameRefused(name string, token, expect uint64) (own bool, rev uint64, taken bool, retry bool, again uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if u, ok := r.users[name]; ok {
		if u.token == token && u.node == r.self && u.inc == r.inc {
			return true, u.rev, false, false, 0
		}
		return false, 0, true, false, 0
	}
	if t := r.userTombs[name]; t != expect {
		return false, 0, false, true, t
	}
	return false, 0, false, false, 0
}

// noteDeleted records that this node's delete of key was stored as a
// delete marker at revision rev, before the watch says so, so that the
// name or place can be taken again at once.
func (r *registry) noteDeleted(key string, rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tombsLocked()
	if name, ok := userOf(key); ok {
		if u, ok := r.users[name]; (!ok || u.rev < rev) && rev > r.userTombs[name] {
			r.userTombs[name] = rev
		}
	} else if i, ok := slotOf(key); ok && i >= 0 && i < r.maxClients {
		r.slotTombs[i] = max(r.slotTombs[i], rev)
	}
}
