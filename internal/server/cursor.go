package server

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/gochat/chat/internal/protocol"
)

// Cursor frames (issue 22, second part; docs/SESSIONS.md). In a cluster a
// session gets frames from every node: each node numbers what it relays
// to a remote user (its origin sequence) and keeps it a while. So that a
// resume on another node, after the session's node died, knows which of
// every origin's frames the client has, the session sends a client that
// asked for it an uncounted cursor frame whenever the next counted frame
// comes from another origin than the last: the positions of every origin
// so far, and the origin of the run that follows. The client resumes
// with the last cursor it read whole and the counted frames it read
// after it (j): they all come from that one origin, in its order, so the
// position of every origin is exact. A run of one origin needs no cursor:
// a user in a conversation with one remote user gets nearly none.

// localOrigin names, in a cursor, the frames of the session's own server:
// as the next run's origin, and with the position of the frames it
// originated (numbered by the session itself). A resume elsewhere after
// the server died compares that position with the last count the server
// reported to the others (the cluster's hub), so that what it had
// originated and not delivered is counted missed, to within one report.
const localOrigin = "-"

// movedOrigin is the origin of no frame: a session made for a resume
// elsewhere starts with it, so that its first counted frame gets a
// cursor.
const movedOrigin = "\x00"

type originSeq struct {
	origin string // "" for this server
	seq    uint64 // 0: not numbered
}

// origins is what a session that sends cursor frames knows of where its
// frames came from. Guarded by the session's lock.
type origins struct {
	pos   map[string]uint64 // the last frame pushed from each other server
	local uint64            // the frames this server originated, pushed
	last  string            // the origin of the last counted frame pushed
	from  []originSeq       // of each frame in the session's kept, index for index
	acked map[string]uint64 // origin positions the client acknowledged, not yet taken (retain.go)
}

func newOrigins() *origins { return &origins{pos: make(map[string]uint64)} }

// seen reports whether the seq-th frame of origin was pushed already.
func (o *origins) seen(origin string, seq uint64) bool {
	// (A frame of this server is numbered as it is kept: never seen.)
	return origin != "" && seq != 0 && seq <= o.pos[origin]
}

// cursorBefore returns the cursor frame to send before a counted frame of
// origin, or nil if the frame continues the run of the last.
func (o *origins) cursorBefore(origin string) []byte {
	if origin == o.last {
		return nil
	}
	o.last = origin
	return protocol.AppendCursor(nil, encodeCursor(origin, o.local, o.pos))
}

// kept notes a counted frame pushed and kept; a frame of this server is
// numbered here.
func (o *origins) kept(origin string, seq uint64) {
	switch {
	case origin == "":
		o.local++
		seq = o.local
	case seq != 0:
		o.pos[origin] = seq
	}
	o.from = append(o.from, originSeq{origin, seq})
}

// compact follows the session's kept as it lets go of its first head
// frames, n being left.
func (o *origins) compact(head, n int) {
	k := copy(o.from, o.from[head:head+n])
	clear(o.from[k:])
	o.from = o.from[:k]
}

// cursorReplay regenerates the cursors of frames replayed by a resume.
type cursorReplay struct {
	o     *origins
	pos   map[string]uint64
	local uint64
	last  string
}

// replayFrom starts a replay of the kept frames from index head: the
// positions before it are those after the last frame of each origin
// before head.
func (o *origins) replayFrom(head int) *cursorReplay {
	pos, local := maps.Clone(o.pos), o.local
	for i := len(o.from) - 1; i >= head; i-- {
		switch e := o.from[i]; {
		case e.origin == "":
			local = e.seq - 1
		case e.seq != 0:
			pos[e.origin] = e.seq - 1
		}
	}
	return &cursorReplay{o: o, pos: pos, local: local, last: movedOrigin}
}

// before returns the cursor to send before the replayed kept frame i, or
// nil.
func (r *cursorReplay) before(i int) []byte {
	e := r.o.from[i]
	var cur []byte
	if e.origin != r.last {
		r.last = e.origin
		cur = protocol.AppendCursor(nil, encodeCursor(e.origin, r.local, r.pos))
	}
	switch {
	case e.origin == "":
		r.local = e.seq
	case e.seq != 0:
		r.pos[e.origin] = e.seq
	}
	return cur
}

// encodeCursor returns a cursor's payload: the origin of the next run
// ("-" for the session's own server), the position of this server's own
// frames as -=local, then each other origin's position as origin=seq,
// sorted. Origins are node names: no spaces, no '='.
func encodeCursor(next string, local uint64, pos map[string]uint64) []byte {
	if next == "" {
		next = localOrigin
	}
	b := []byte(next)
	b = append(b, " "+localOrigin+"="...)
	b = strconv.AppendUint(b, local, 10)
	for _, o := range slices.Sorted(maps.Keys(pos)) {
		if len(b)+1+len(o)+1+20 > protocol.MaxCursor {
			break // more nodes than a cluster has
		}
		b = append(b, ' ')
		b = append(b, o...)
		b = append(b, '=')
		b = strconv.AppendUint(b, pos[o], 10)
	}
	return b
}

// parseCursor decodes a cursor a client resumes with, j counted frames
// read after it, into every origin's position: those of the cursor, and
// j more for the origin of the run after it. The position of the frames
// the cursor's server originated is under "-".
func parseCursor(c []byte, j uint64) (map[string]uint64, error) {
	f := bytes.Split(c, []byte{' '})
	if len(f[0]) == 0 || bytes.IndexByte(f[0], '=') >= 0 {
		// Not an origin encodeCursor writes: "-" or a node's name.
		return nil, fmt.Errorf("%w: cursor %q", protocol.ErrMalformed, c)
	}
	pos := make(map[string]uint64, len(f)-1)
	for _, kv := range f[1:] {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		n, err := strconv.ParseUint(string(v), 10, 64)
		if !ok || len(k) == 0 || err != nil {
			return nil, fmt.Errorf("%w: cursor %q", protocol.ErrMalformed, c)
		}
		pos[string(k)] = n
	}
	pos[string(f[0])] += j
	return pos, nil
}
