package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// Messages from one sender to one recipient arrive in the order sent,
// across nodes, and none is lost without a fault: the gap counters stay at
// zero, and the per-node relay counters show the traffic.
func TestOrderAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, "--flood-rate", "0")
	rcpt := join(t, nodes[1], "rcpt")
	const n = 3000
	for i, nd := range nodes {
		c := join(t, nd, fmt.Sprint("s", i+1))
		var b []byte
		for k := range n {
			b = protocol.AppendMessage(b, protocol.SendMessage, []string{"rcpt"}, []byte(strconv.Itoa(k)))
		}
		go c.NC.Write(b) // the recipient checks what arrives
	}
	next := map[string]int{}
	for got := 0; got < n*len(nodes); got++ {
		h, p, err := rcpt.ReadFrame()
		if err != nil {
			t.Fatalf("after %d messages: %v (next %v)", got, err, next)
		}
		f := strings.SplitN(string(p), " ", 3)
		if h.Type != protocol.ForwardMessage || len(f) != 3 {
			t.Fatalf("got %s %q", h.Name, p)
		}
		if k, _ := strconv.Atoi(f[2]); k != next[f[1]] {
			t.Fatalf("from %s: message %d, want %d", f[1], k, next[f[1]])
		}
		next[f[1]]++
	}
	for _, nd := range nodes {
		if g := nd.metric(t, "chat_cluster_gaps_total"); g != 0 {
			t.Errorf("%s counted %v gaps", nd.name, g)
		}
	}
	for _, from := range []string{"n1", "n3"} {
		if v := nodes[1].metric(t, "chat_cluster_frames_in_total", `peer="`+from+`"`); v != n {
			t.Errorf("n2 counted %v frames in from %s, want %d", v, from, n)
		}
	}
	if v := nodes[0].metric(t, "chat_cluster_frames_out_total", `peer="n2"`); v != n {
		t.Errorf("n1 counted %v frames out to n2, want %d", v, n)
	}
}
