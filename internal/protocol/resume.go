package protocol

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"strconv"
)

// FeatureResume is the feature under which a session outlives its
// connection (docs/PROTOCOL.md, "resume"): after a join that stood the
// server sends a session frame, numbers the counted frames it sends,
// keeps those the client has not acknowledged (received), and a new
// connection that presents the session's token (resume) takes the
// session over and gets what it missed.
const FeatureResume = "resume"

const (
	// TokenBytes is the size of a session token: 128 random bits.
	TokenBytes = 16
	// tokenHex is a token's length on the wire, in lower-case hex.
	tokenHex = 2 * TokenBytes
	// maxSession is the largest session payload: a token and a window
	// in milliseconds.
	maxSession = tokenHex + 1 + maxIDDigits
	// maxResume is the largest resume payload: a name, a token and a
	// count.
	maxResume = MaxUsernameBytes + 1 + tokenHex + 1 + maxIDDigits
)

// Token is a session's secret, given by the server in the session frame
// and presented by the client in resume.
type Token [TokenBytes]byte

// String returns the token in lower-case hex, as it is on the wire.
func (t Token) String() string {
	var b [tokenHex]byte
	return string(appendToken(b[:0], t))
}

// Equal reports whether t and u are the same token, in constant time.
func (t Token) Equal(u Token) bool { return subtle.ConstantTimeCompare(t[:], u[:]) == 1 }

func appendToken(dst []byte, t Token) []byte {
	const hexDigits = "0123456789abcdef"
	for _, b := range t {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

// parseToken decodes a token: exactly 32 lower-case hex digits.
func parseToken(f []byte) (Token, error) {
	var t Token
	if len(f) != tokenHex {
		return t, fmt.Errorf("%w: token of %d bytes", ErrMalformed, len(f))
	}
	for i := range t {
		hi, lo := hexValue(f[2*i]), hexValue(f[2*i+1])
		if hi < 0 || lo < 0 {
			return t, fmt.Errorf("%w: token %q", ErrMalformed, f)
		}
		t[i] = byte(hi<<4 | lo)
	}
	return t, nil
}

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

// Counted reports whether the server numbers frames of type t for a
// session that was granted resume, and the client counts them: every
// frame the server sends but the file-transfer ones (never kept for a
// resume: a file cut by a lost connection is aborted) and those of the
// negotiation and of resume itself (received included: the server's own
// count of the client's frames, FeatureTaken).
func Counted(t Type) bool {
	switch t {
	case ExtHello, Session, Resumed, ResumeFailed, Received, TryAgain, JoinOK, Cursor, Ping, Pong,
		ForwardFile, FileBegin, FileChunk, FileEnd, FileAbort, FileReady, FileAck, FileResult,
		ErrUnknownMessage, ErrServerFull, ErrUsernameUnavailable, Unknown:
		return false
	}
	return t < NumTypes
}

// forwardPrefix starts every forward_message frame, the frame a session
// is sent most.
var forwardPrefix = []byte("forward_message ")

// CountedFrame reports whether the whole frame is of a Counted type.
func CountedFrame(frame []byte) bool {
	if bytes.HasPrefix(frame, forwardPrefix) {
		return true
	}
	name, _, ok := bytes.Cut(frame, []byte{' '})
	return ok && Counted(LookupType(name))
}

// AppendSession appends a session frame: `<token> <window-ms>`.
func AppendSession(dst []byte, t Token, windowMillis uint64) []byte {
	var num [20]byte
	w := strconv.AppendUint(num[:0], windowMillis, 10)
	dst = AppendHeader(dst, Session, int64(tokenHex+1+len(w)))
	dst = appendToken(dst, t)
	dst = append(dst, ' ')
	return append(dst, w...)
}

// ParseSession decodes a session payload.
func ParseSession(p []byte) (t Token, windowMillis uint64, err error) {
	field, rest, ok := cutField(p)
	if !ok {
		return t, 0, fmt.Errorf("%w: session without a window", ErrMalformed)
	}
	if t, err = parseToken(field); err != nil {
		return Token{}, 0, err
	}
	if windowMillis, err = parseID(rest); err != nil {
		return Token{}, 0, err
	}
	return t, windowMillis, nil
}

// AppendResume appends a resume frame: `<username> <token> <n>`, n being
// the counted frames the client has received in the session.
func AppendResume(dst []byte, name string, t Token, n uint64) []byte {
	var num [20]byte
	ns := strconv.AppendUint(num[:0], n, 10)
	dst = AppendHeader(dst, Resume, int64(len(name)+1+tokenHex+1+len(ns)))
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = appendToken(dst, t)
	dst = append(dst, ' ')
	return append(dst, ns...)
}

// ParseResume decodes a resume payload.
func ParseResume(p []byte) (name string, t Token, n uint64, err error) {
	f := bytes.Split(p, []byte{' '})
	if len(f) != 3 {
		return "", t, 0, fmt.Errorf("%w: resume has %d fields", ErrMalformed, len(f))
	}
	name = string(f[0])
	if err = ValidUsername(name); err != nil {
		return "", t, 0, err
	}
	if t, err = parseToken(f[1]); err != nil {
		return "", Token{}, 0, err
	}
	if n, err = parseID(f[2]); err != nil {
		return "", Token{}, 0, err
	}
	return name, t, n, nil
}

// AppendCount appends a resumed (the counted frames missed) or received
// (the counted frames received) frame: t and the decimal n.
func AppendCount(dst []byte, t Type, n uint64) []byte {
	var num [20]byte
	ns := strconv.AppendUint(num[:0], n, 10)
	dst = AppendHeader(dst, t, int64(len(ns)))
	return append(dst, ns...)
}

// ParseCountFrame decodes a resumed or received payload: a decimal
// number, no sign or leading zeros, at most 19 digits.
func ParseCountFrame(p []byte) (uint64, error) { return parseID(p) }
