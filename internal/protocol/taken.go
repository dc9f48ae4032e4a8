package protocol

import (
	"bytes"
	"fmt"
	"strconv"
)

// FeatureTaken is the feature, granted only with FeatureResume, under
// which the server counts the client's own frames it has taken (read whole
// and acted on) in the session, and tells the client that count: in
// received frames of its own, now and then, and in resumed. The client
// keeps what it sent since the last count it learnt and, on a resume,
// sends again exactly the frames the server did not take
// (docs/PROTOCOL.md, "taken"; issue 22).
const FeatureTaken = "taken"

// Taken reports whether the server counts a client frame of type t under
// FeatureTaken: the frames a person's line turns into that can be sent
// again as they are (a message, a list request). The file frames are not
// counted (a file cut by a lost connection is given up and named, as
// before), nor those of the negotiation and of resume, nor disconnect.
func Taken(t Type) bool { return t == SendMessage || t == RequestUsersList }

// maxResumed is the largest resumed payload: `<missed> ~<taken>`.
const maxResumed = maxIDDigits + 2 + maxIDDigits

// AppendResumed appends a resumed frame for a connection granted
// FeatureTaken: `<missed> <taken>`, or `<missed> ~<taken>` when taken is
// only a lower bound (the session moved from a node whose exact count is
// not known: the frames after it may or may not have been taken).
func AppendResumed(dst []byte, missed, taken uint64, exact bool) []byte {
	var num [2*maxIDDigits + 2]byte
	b := strconv.AppendUint(num[:0], missed, 10)
	b = append(b, ' ')
	if !exact {
		b = append(b, '~')
	}
	b = strconv.AppendUint(b, taken, 10)
	dst = AppendHeader(dst, Resumed, int64(len(b)))
	return append(dst, b...)
}

// ParseResumed decodes a resumed payload: `<missed>` (has false: no count
// of the client's frames), `<missed> <taken>` (exact) or
// `<missed> ~<taken>` (a lower bound).
func ParseResumed(p []byte) (missed, taken uint64, exact, has bool, err error) {
	m, rest, two := bytes.Cut(p, []byte{' '})
	if missed, err = parseID(m); err != nil {
		return 0, 0, false, false, err
	}
	if !two {
		return missed, 0, false, false, nil
	}
	exact = true
	if len(rest) > 0 && rest[0] == '~' {
		exact, rest = false, rest[1:]
	}
	if taken, err = parseID(rest); err != nil {
		return 0, 0, false, false, fmt.Errorf("%w: resumed %q", ErrMalformed, p)
	}
	return missed, taken, exact, true, nil
}
