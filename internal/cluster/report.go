package cluster

import (
	"encoding/binary"

	"github.com/nats-io/nats.go"
)

// The reports a node sends the others every reportEvery (what it
// originated, originated.go; its origin sequences, seqs.go; its clients'
// acknowledged positions, acks.go) share one layout: a head naming the
// node (its name's length (1), the name, its incarnation (8)), then
// entries, each a session's key (the user's name's length (1), the name,
// the session's join token (8)) followed by a fixed number of 8-byte
// numbers, which each report's own comment names.

// reportHead is the head of this node's reports.
func (h *Hub) reportHead() []byte {
	head := []byte{byte(len(h.self))}
	head = append(head, h.self...)
	return binary.BigEndian.AppendUint64(head, h.inc)
}

// report gathers the entries of one report into messages of about
// maxReport bytes at most, each starting with the head, published to subj.
type report struct {
	nc   *nats.Conn
	subj string
	head []byte
	b    []byte
}

// newReport starts a report to subj.
func (h *Hub) newReport(subj string) *report {
	head := h.reportHead()
	return &report{nc: h.nc, subj: subj, head: head, b: head}
}

// add appends the entry of the session of key with its numbers vals, and
// publishes what is gathered once it passes maxReport.
func (r *report) add(key creditKey, vals ...uint64) {
	r.b = append(r.b, byte(len(key.name)))
	r.b = append(r.b, key.name...)
	r.b = binary.BigEndian.AppendUint64(r.b, key.token)
	for _, v := range vals {
		r.b = binary.BigEndian.AppendUint64(r.b, v)
	}
	if len(r.b) > maxReport {
		r.flush()
	}
}

// flush publishes the entries gathered, if there are any.
func (r *report) flush() {
	if len(r.b) > len(r.head) {
		r.nc.Publish(r.subj, r.b)
		r.b = append(r.b[:0:0], r.head...)
	}
}

// reportFrom reads the head of another node's report b: the node, its
// incarnation and the entries after the head. ok is false for a report
// too short to have a head, one from this node, or one from an
// incarnation whose lease is not the node's (gone, or not yet known).
func (h *Hub) reportFrom(b []byte) (node string, inc uint64, entries []byte, ok bool) {
	if len(b) < 1 || len(b) < 1+int(b[0])+8 {
		return "", 0, nil, false
	}
	nl := int(b[0])
	node = string(b[1 : 1+nl])
	inc = binary.BigEndian.Uint64(b[1+nl:])
	if node == h.self || !h.reg.leased(node, inc) {
		return "", 0, nil, false
	}
	return node, inc, b[1+nl+8:], true
}

// eachEntry calls f with each entry of a report's entries that holds nv
// numbers (at most 3), in order; it stops at the first malformed one. The
// slice f is given is reused from call to call.
func eachEntry(entries []byte, nv int, f func(key creditKey, vals []uint64)) {
	var vals [3]uint64
	for len(entries) > 0 {
		ul := int(entries[0])
		if ul == 0 || len(entries) < 1+ul+8+8*nv {
			return
		}
		key := creditKey{string(entries[1 : 1+ul]), binary.BigEndian.Uint64(entries[1+ul:])}
		p := entries[1+ul+8:]
		for i := range nv {
			vals[i] = binary.BigEndian.Uint64(p[8*i:])
		}
		entries = p[8*nv:]
		f(key, vals[:nv])
	}
}
