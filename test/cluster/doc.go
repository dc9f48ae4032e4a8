// Package cluster holds the black-box tests of cluster mode: real gochatd
// processes, three nodes with embedded engines routed to each other, or
// nodes on an external three-server NATS cluster (nats-server built from
// the module in go.mod), and faults made by killing real processes and by
// a proxy that stops passing bytes. See docs/CLUSTER.md.
package cluster
