package cluster

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/gochat/chat/internal/protocol"
)

// outcome joins name on n over a fresh connection and says what came of
// it: "joined", "closed" (closed without an answer), or the refusal's
// frame type. A join is silent, so the join is followed by a
// request_users_list: frames are handled in order, so a list comes back
// only after a join that succeeded, and a refused join is answered with
// its error frame, the request discarded. (Taking silence for success
// failed once: a refusal decided during a leader election came 3.2 s
// late.)
func outcome(t *testing.T, n *node, name string) (string, *conn) {
	c := dial(t, n, name)
	c.Write(protocol.AppendEmpty(protocol.AppendJoin(nil, protocol.Join, name), protocol.RequestUsersList))
	h, _, err := c.ReadFrame()
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("joining %s on %s: no answer after %v", name, n.name, timeout) // not Fatal: outcome runs in goroutines
		return "undecided", c
	case err != nil:
		return "closed", c
	case h.Type == protocol.ResponseUsersList:
		return "joined", c
	}
	return h.Name, c
}

// The cap and the names are cluster-wide and exact: 300 joins racing over
// three nodes with --max-clients 10 admit exactly 10; 100 joins of one
// name racing over three nodes: exactly one wins.
func TestAdmission(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, "--max-clients", "10")
	var conns []*conn
	race := func(n int, name func(i int) string) map[string]int {
		type result struct {
			what string
			c    *conn
		}
		results := make(chan result, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r, c := outcome(t, nodes[i%3], name(i))
				results <- result{r, c}
			})
		}
		wg.Wait()
		close(results)
		got := map[string]int{}
		for r := range results {
			got[r.what]++
			conns = append(conns, r.c)
		}
		return got
	}
	got := race(300, func(i int) string { return fmt.Sprint("u", i) })
	if got["joined"] != 10 || got["err_server_full"] != 290 || len(got) != 2 {
		t.Fatalf("300 racing joins for 10 places: %v", got)
	}
	joins := 0
	for _, n := range nodes {
		joins += n.Out.Count(func(s string) bool { return strings.HasPrefix(s, "join: ") })
	}
	if joins != 10 {
		t.Fatalf("%d join lines over the nodes, want 10", joins)
	}
	// The winners leave (their connections close); then one name races.
	for _, c := range conns {
		c.NC.Close()
	}
	waitUsers(t, nodes, 0)
	got = race(100, func(int) string { return "samename" })
	if got["joined"] != 1 || got["err_username_unavailable"] != 99 || len(got) != 2 {
		t.Fatalf("100 racing joins of one name: %v", got)
	}
	same := 0
	for _, n := range nodes {
		same += n.Out.Count(func(s string) bool { return s == "join: samename" })
	}
	if same != 1 {
		t.Fatalf("join: samename printed %d times", same)
	}
}
