package cluster

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// listening returns the TCP ports pid listens on: the sockets of its open
// descriptors (/proc/PID/fd) that /proc/PID/net/tcp and tcp6 list in
// state LISTEN (0A).
func listening(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the heading
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" || !inodes[fl[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fl[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("/proc/%d/net/%s: %q", pid, table, sc.Text())
			}
			ports = append(ports, int(p))
		}
		f.Close()
	}
	slices.Sort(ports)
	return ports
}

// A node listens on its chat port, its route port, and the --metrics-addr
// and --http-addr it was given: nothing else (issue 20: the embedded
// engine used to open a client port on loopback too).
func TestListensOnlyOnItsPorts(t *testing.T) {
	t.Parallel()
	web := []int{testbin.FreePort(t), testbin.FreePort(t)}
	nodes := startClusterEach(t, gochatdBin, 2, func(i int) []string {
		return []string{"--http-addr", fmt.Sprint("127.0.0.1:", web[i])}
	})
	a, b := join(t, nodes[0], "a"), join(t, nodes[1], "b")
	a.waitList(usersList("a", "b"))
	b.send("hi", "a")
	a.expect(protocol.ForwardMessage, "1 b hi")
	for i, n := range nodes {
		want := []int{n.port, n.route, n.metrics, web[i]}
		slices.Sort(want)
		if got := listening(t, n.Cmd.Process.Pid); !slices.Equal(got, want) {
			t.Errorf("%s listens on %v, want %v (chat %d, route %d, metrics %d, web %d)", n.name, got, want, n.port, n.route, n.metrics, web[i])
		}
	}
}
