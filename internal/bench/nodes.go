package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// nodeName returns the name of a cluster's i-th node (0-based): n1, n2, ...
func nodeName(i int) string { return "n" + strconv.Itoa(i+1) }

// clusterArgs returns the flags of node i of a cluster whose nodes chat
// on chatPorts and route to each other on routePorts (both on 127.0.0.1),
// keeping their state under dir: a lone server's flags (serverArgs) plus
// the cluster's, as docs/OPERATIONS.md starts a cluster on one machine.
// The cluster's secret is dir's secretFile (writeSecret).
func clusterArgs(i int, chatPorts, routePorts []int, maxClients int, dir string, wait time.Duration) []string {
	var peers []string
	for j, p := range routePorts {
		if j != i {
			peers = append(peers, "127.0.0.1:"+strconv.Itoa(p))
		}
	}
	return append(serverArgs(chatPorts[i], maxClients),
		"--node", nodeName(i),
		"--cluster-listen", "127.0.0.1:"+strconv.Itoa(routePorts[i]),
		"--cluster-peers", strings.Join(peers, ","),
		"--cluster-dir", filepath.Join(dir, nodeName(i)),
		"--cluster-secret-file", filepath.Join(dir, secretFile),
		"--cluster-wait", wait.String(),
	)
}

// secretFile is the name of the cluster's secret in its folder.
const secretFile = "secret"

// writeSecret writes a fresh cluster secret to dir's secretFile, readable
// by its owner only (gochatd refuses it otherwise).
func writeSecret(dir string) error {
	b := make([]byte, 32)
	rand.Read(b)
	return os.WriteFile(filepath.Join(dir, secretFile), []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
}

// spawnedCluster is a cluster the tool started: one process per node.
type spawnedCluster struct {
	Nodes []*target // n1, n2, ...
	dir   string    // the nodes' state; removed by Close
}

// spawnCluster starts a cluster of k nodes, each its own process (bin, or
// this tool as ServerCommand), with a cluster-wide cap of maxClients, and
// waits at most wait until every node's chat port accepts, which happens
// once the node is part of the cluster.
func spawnCluster(ctx context.Context, bin string, k, maxClients int, wait time.Duration, stderr io.Writer) (*spawnedCluster, error) {
	ports, err := freePorts(3 * k)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chatbench-cluster-")
	if err != nil {
		return nil, err
	}
	c := &spawnedCluster{dir: dir}
	if err := writeSecret(dir); err != nil {
		c.Close()
		return nil, err
	}
	chatPorts, routePorts, metricsPorts := ports[:k], ports[k:2*k], ports[2*k:]
	for i := range k {
		metrics := "127.0.0.1:" + strconv.Itoa(metricsPorts[i])
		t, err := startServer(bin, append(clusterArgs(i, chatPorts, routePorts, maxClients, dir, wait), "--metrics-addr", metrics), chatPorts[i], stderr)
		if err != nil {
			c.Close()
			return nil, err
		}
		t.Node, t.metricsAddr = nodeName(i), metrics
		c.Nodes = append(c.Nodes, t)
	}
	errs := make([]error, k)
	var wg sync.WaitGroup
	for i, t := range c.Nodes {
		wg.Go(func() { errs[i] = t.waitAccepting(ctx, wait) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("cluster of %d: %w", k, err)
		}
	}
	return c, nil
}

// PIDs returns the nodes' process ids.
func (c *spawnedCluster) PIDs() []int {
	pids := make([]int, len(c.Nodes))
	for i, t := range c.Nodes {
		pids[i] = t.PID
	}
	return pids
}

// Close stops every node at once (each leaves the cluster, which takes a
// few seconds) and removes their state.
func (c *spawnedCluster) Close() {
	var wg sync.WaitGroup
	for _, t := range c.Nodes {
		wg.Go(t.Close)
	}
	wg.Wait()
	os.RemoveAll(c.dir)
}
