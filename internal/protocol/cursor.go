package protocol

import (
	"bytes"
	"fmt"
	"strconv"
)

// FeatureCursor is the feature under which a session granted resume in a
// cluster is sent cursor frames (docs/PROTOCOL.md, "resume"): a client
// that asks for it resumes with the last cursor it read whole and the
// counted frames it read after it, so that a resume on another node knows
// which of every node's frames the client has (docs/SESSIONS.md).
const FeatureCursor = "cursor"

// MaxCursor bounds a cursor's payload: a server sends none longer, and a
// resume's cursor longer than this is malformed. A cursor names at most
// one position per node (a cluster has at most 256: 256 node names of
// at most 64 bytes and their positions fit).
const MaxCursor = 32 << 10

// MaxResumeCursor is the largest resume payload from a client that was
// granted cursor: with j and a cursor. Without cursor, a resume longer
// than MaxPayload(ToServer, Resume) is malformed.
const MaxResumeCursor = maxResume + 1 + maxIDDigits + 1 + MaxCursor

// AppendCursor appends a cursor frame with payload c, which is opaque to
// the client.
func AppendCursor(dst []byte, c []byte) []byte {
	dst = AppendHeader(dst, Cursor, int64(len(c)))
	return append(dst, c...)
}

// AppendResumeAt appends a resume frame that names, besides the counted
// frames received (n), the last cursor read whole and the counted frames
// read after it (j): `<username> <token> <n> <j> <cursor>`. Without a
// cursor it is AppendResume.
func AppendResumeAt(dst []byte, name string, t Token, n, j uint64, cursor []byte) []byte {
	if len(cursor) == 0 {
		return AppendResume(dst, name, t, n)
	}
	var num [42]byte
	ns := strconv.AppendUint(num[:0], n, 10)
	ns = append(ns, ' ')
	ns = strconv.AppendUint(ns, j, 10)
	dst = AppendHeader(dst, Resume, int64(len(name)+1+tokenHex+1+len(ns)+1+len(cursor)))
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = appendToken(dst, t)
	dst = append(dst, ' ')
	dst = append(dst, ns...)
	dst = append(dst, ' ')
	return append(dst, cursor...)
}

// ParseResumeAt decodes a resume payload, with or without a cursor (then
// j is 0 and cursor nil). The cursor points into p.
func ParseResumeAt(p []byte) (name string, t Token, n, j uint64, cursor []byte, err error) {
	f := bytes.SplitN(p, []byte{' '}, 5)
	switch len(f) {
	case 3:
		name, t, n, err = ParseResume(p)
		return name, t, n, 0, nil, err
	case 5:
	default:
		return "", t, 0, 0, nil, fmt.Errorf("%w: resume has %d fields", ErrMalformed, len(f))
	}
	head := p[:len(f[0])+1+len(f[1])+1+len(f[2])]
	if name, t, n, err = ParseResume(head); err != nil {
		return "", Token{}, 0, 0, nil, err
	}
	if j, err = parseID(f[3]); err != nil {
		return "", Token{}, 0, 0, nil, err
	}
	if len(f[4]) == 0 || len(f[4]) > MaxCursor {
		return "", Token{}, 0, 0, nil, fmt.Errorf("%w: cursor of %d bytes", ErrMalformed, len(f[4]))
	}
	return name, t, n, j, f[4], nil
}
