package cluster

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// forgedBatch is a batch of frames from src (incarnation inc) for user
// name with the session's token.
func forgedBatch(src string, inc, seq uint64, name string, token uint64, frame []byte) []byte {
	b := []byte{batchVersion}
	b = binary.BigEndian.AppendUint64(b, inc)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(len(src)))
	b = append(b, src...)
	return appendEntry(b, creditKey{name, token}, frame)
}

// TestForgedNodesBounded: heartbeats and batches of frames from 500
// invented nodes, published through a connection to the engine, leave no
// state and no metric series behind (issue 20: they added 2,000 series);
// only nodes holding a lease are heard.
func TestForgedNodesBounded(t *testing.T) {
	nodes := testCluster(t, 2, 10)
	n1, n2 := nodes[0], nodes[1]
	reg := prometheus.NewRegistry()
	if err := n1.Register(reg); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(testEngines(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const forged = 500
	for i := range forged {
		node := fmt.Sprint("fake-", i)
		if err := nc.Publish(n1.cfg.Name+heartbeatSubject, fmt.Appendf(nil, "%x up %s", uint64(i+1), node)); err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(n1.hub.subject(framesSubject, n1.cfg.Node), forgedBatch(node, uint64(i+1), 1, "nobody", 1, []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	// The engine keeps the order of one publisher's messages on a
	// subject: once n1 has handled a heartbeat and a batch published
	// after the forged ones, it has handled those too. A heartbeat of n2
	// saying it leaves changes n1's view of n2 (the next real one
	// restores it); the batch, from n2, for nobody, makes n1 ack it to n2.
	heard := hookHeard(n1)
	acked, err := nc.SubscribeSync(n1.hub.subject(acksSubject, n2.cfg.Node))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.Publish(n1.cfg.Name+heartbeatSubject, fmt.Appendf(nil, "%x %s %s", n2.inc, stateLeaving, n2.cfg.Node))
	nc.Publish(n1.hub.subject(framesSubject, n1.cfg.Node), forgedBatch(n2.cfg.Node, n2.inc, 0, "nobody", 1, []byte("x")))
	deadline := time.After(10 * time.Second)
	for left := false; !left; {
		select {
		case <-heard:
			n1.hub.live.mu.RLock()
			st := n1.hub.live.nodes[n2.cfg.Node]
			left = st != nil && st.left
			n1.hub.live.mu.RUnlock()
		case <-deadline:
			t.Fatal("n1 never handled the heartbeat after the forged ones")
		}
	}
	if _, err := acked.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("n1 never acked the batch after the forged ones: %v", err)
	}

	n1.hub.live.mu.RLock()
	known := len(n1.hub.live.nodes)
	n1.hub.live.mu.RUnlock()
	if known != 2 {
		t.Errorf("n1 keeps the state of %d nodes, want 2 (itself and n2)", known)
	}
	n1.hub.relay.inMu.Lock()
	seqs := len(n1.hub.relay.seqs)
	n1.hub.relay.inMu.Unlock()
	if seqs > 1 {
		t.Errorf("n1 keeps the sequences of %d sources, want at most 1 (n2)", seqs)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fakes := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && strings.HasPrefix(l.GetValue(), "fake-") {
					fakes++
				}
			}
		}
	}
	if fakes != 0 {
		t.Errorf("n1 has %d metric series of invented nodes", fakes)
	}
}
