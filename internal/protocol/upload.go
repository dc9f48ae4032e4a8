package protocol

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Extension features beyond chunked-file (docs/PROTOCOL.md, "Extensions").
const (
	// FeatureFileUpload is the feature under which a client sends files
	// as file_begin, file_chunk... and file_end (or file_abort) frames
	// that its other frames may come between, paced by the server's
	// file_ack frames, and learns who got each file (file_result).
	FeatureFileUpload = "file-upload"
	// FeatureNotOnline is the feature under which the server tells a
	// sender which users named by its send_message or send_file are not
	// online (not_online).
	FeatureNotOnline = "not-online"
	// FeaturePresence is the feature under which the server tells a
	// client as users join and leave (presence), while few enough are
	// online.
	FeaturePresence = "presence"
	// FeatureOnline is the feature under which the server tells a client,
	// right after its join, who is online (online), so that a terminal
	// can complete their names without a request_users_list, which would
	// show on the server's stdout (issue 23 item 9).
	FeatureOnline = "online"
	// FeatureTryAgain is the feature under which the server answers every
	// join: join_ok once admitted, try_again when it cannot decide it now
	// (a cluster whose registry has no majority), and the contract's
	// refusals; after try_again the client tries again by itself.
	FeatureTryAgain = "try-again"
)

const (
	// MaxUploadChunk is the most file bytes one file_chunk from a client
	// carries.
	MaxUploadChunk = 256 << 10
	// maxPresence is the largest presence payload: an event word and a
	// username or a number.
	maxPresence = 8 + 1 + MaxUsernameBytes
	// maxTryAgainDigits is the most digits of a try_again payload.
	maxTryAgainDigits = 7
	// MaxTryAgain is the longest wait a try_again may ask for.
	MaxTryAgain = time.Hour
)

// The events of a presence frame.
const (
	PresenceJoined  = "joined"  // <username> joined
	PresenceLeft    = "left"    // <username> left
	PresencePaused  = "paused"  // more than <limit> users are online: no joined/left events until resumed
	PresenceResumed = "resumed" // as many as the limit or fewer again: the events go on
)

// AppendUploadBegin appends a client's file_begin frame:
// `<id> <N> <user1> ... <userN> <filename> <size>`.
func AppendUploadBegin(dst []byte, id uint64, names []string, filename string, size int64) []byte {
	var num [20]byte
	ids := strconv.AppendUint(num[:0], id, 10)
	var sz [20]byte
	szs := strconv.AppendInt(sz[:0], size, 10)
	dst = AppendHeader(dst, FileBegin, int64(len(ids)+1+listLen(names)+1+len(filename)+1+len(szs)))
	dst = append(dst, ids...)
	dst = append(dst, ' ')
	dst = appendList(dst, names)
	dst = append(dst, ' ')
	dst = append(dst, filename...)
	dst = append(dst, ' ')
	return append(dst, szs...)
}

// ParseUploadBegin decodes a client's file_begin payload.
func ParseUploadBegin(p []byte) (id uint64, names []string, filename string, size int64, err error) {
	field, rest, ok := cutField(p)
	if !ok {
		return 0, nil, "", 0, fmt.Errorf("%w: file_begin without a list", ErrMalformed)
	}
	if id, err = parseID(field); err != nil {
		return 0, nil, "", 0, err
	}
	if names, rest, err = parseList(rest, 1, MaxRecipients); err != nil {
		return 0, nil, "", 0, err
	}
	field, rest, ok = cutField(rest)
	if !ok {
		return 0, nil, "", 0, fmt.Errorf("%w: file_begin without a size", ErrMalformed)
	}
	filename = string(field)
	if err := ValidFilename(filename); err != nil {
		return 0, nil, "", 0, err
	}
	if size, err = parseSize(rest); err != nil {
		return 0, nil, "", 0, err
	}
	return id, names, filename, size, nil
}

// AppendFileReady appends a file_ready frame: `<id> <window> <N> <user1>
// ... <userN>`, the recipients of upload id that are online (none: the
// upload is over), and the most bytes of it the client may have sent
// beyond the last file_ack.
func AppendFileReady(dst []byte, id uint64, window int64, online []string) []byte {
	var num [40]byte
	head := strconv.AppendUint(num[:0], id, 10)
	head = append(head, ' ')
	head = strconv.AppendInt(head, window, 10)
	dst = AppendHeader(dst, FileReady, int64(len(head)+1+listLen(online)))
	dst = append(dst, head...)
	dst = append(dst, ' ')
	return appendList(dst, online)
}

// ParseFileReady decodes a file_ready payload.
func ParseFileReady(p []byte) (id uint64, window int64, online []string, err error) {
	f := bytes.SplitN(p, []byte{' '}, 3)
	if len(f) != 3 {
		return 0, 0, nil, fmt.Errorf("%w: file_ready has %d fields", ErrMalformed, len(f))
	}
	if id, err = parseID(f[0]); err != nil {
		return 0, 0, nil, err
	}
	if window, err = parseSize(f[1]); err != nil || window == 0 {
		return 0, 0, nil, fmt.Errorf("%w: window %q", ErrMalformed, f[1])
	}
	if online, err = parseTailList(f[2]); err != nil {
		return 0, 0, nil, err
	}
	return id, window, online, nil
}

// AppendFileAck appends a file_ack frame: `<id> <offset>`, the bytes of
// upload id passed on so far.
func AppendFileAck(dst []byte, id uint64, offset int64) []byte {
	var num [40]byte
	b := strconv.AppendUint(num[:0], id, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, offset, 10)
	dst = AppendHeader(dst, FileAck, int64(len(b)))
	return append(dst, b...)
}

// ParseFileAck decodes a file_ack payload.
func ParseFileAck(p []byte) (id uint64, offset int64, err error) {
	field, rest, ok := cutField(p)
	if !ok {
		return 0, 0, fmt.Errorf("%w: file_ack without an offset", ErrMalformed)
	}
	if id, err = parseID(field); err != nil {
		return 0, 0, err
	}
	if offset, err = parseSize(rest); err != nil {
		return 0, 0, err
	}
	return id, offset, nil
}

// AppendFileResult appends a file_result frame: `<id> <N> <user1> ...
// <userN>`, the users upload id was delivered to.
func AppendFileResult(dst []byte, id uint64, delivered []string) []byte {
	var num [20]byte
	ids := strconv.AppendUint(num[:0], id, 10)
	dst = AppendHeader(dst, FileResult, int64(len(ids)+1+listLen(delivered)))
	dst = append(dst, ids...)
	dst = append(dst, ' ')
	return appendList(dst, delivered)
}

// ParseFileResult decodes a file_result payload.
func ParseFileResult(p []byte) (id uint64, delivered []string, err error) {
	field, rest, ok := cutField(p)
	if !ok {
		return 0, nil, fmt.Errorf("%w: file_result without a list", ErrMalformed)
	}
	if id, err = parseID(field); err != nil {
		return 0, nil, err
	}
	if delivered, err = parseTailList(rest); err != nil {
		return 0, nil, err
	}
	return id, delivered, nil
}

// AppendNotOnline appends a not_online frame: `<N> <user1> ... <userN>`.
func AppendNotOnline(dst []byte, names []string) []byte {
	dst = AppendHeader(dst, NotOnline, int64(listLen(names)))
	return appendList(dst, names)
}

// ParseNotOnline decodes a not_online payload: 1 to 1024 names.
func ParseNotOnline(p []byte) ([]string, error) {
	names, err := parseTailList(p)
	if err == nil && len(names) == 0 {
		err = fmt.Errorf("%w: not_online names nobody", ErrMalformed)
	}
	return names, err
}

// AppendPresence appends a presence frame: `<event>`, or `<event> <arg>`
// when arg is not empty.
func AppendPresence(dst []byte, event, arg string) []byte {
	n := len(event)
	if arg != "" {
		n += 1 + len(arg)
	}
	dst = AppendHeader(dst, Presence, int64(n))
	dst = append(dst, event...)
	if arg != "" {
		dst = append(dst, ' ')
		dst = append(dst, arg...)
	}
	return dst
}

// ParsePresence decodes a presence payload: `joined <username>`, `left
// <username>`, `paused <limit>` or `resumed`.
func ParsePresence(p []byte) (event, arg string, err error) {
	field, rest, more := cutField(p)
	event, arg = string(field), string(rest)
	switch {
	case (event == PresenceJoined || event == PresenceLeft) && more:
		err = ValidUsername(arg)
	case event == PresencePaused && more:
		_, err = parseSize(rest)
	case event == PresenceResumed && !more:
	default:
		err = fmt.Errorf("%w: presence %q", ErrMalformed, p)
	}
	if err != nil {
		return "", "", err
	}
	return event, arg, nil
}

// AppendOnline appends an online frame: `<N> <user1> ... <userN>`, or
// `<N>` alone when names is nil (N users are online, too many to list).
// A names that is not nil must hold n names.
func AppendOnline(dst []byte, n int, names []string) []byte {
	if names == nil {
		var num [20]byte
		ns := strconv.AppendInt(num[:0], int64(n), 10)
		dst = AppendHeader(dst, Online, int64(len(ns)))
		return append(dst, ns...)
	}
	dst = AppendHeader(dst, Online, int64(listLen(names)))
	return appendList(dst, names)
}

// ParseOnline decodes an online payload: the number of users online, and
// their names (at most 1024), or nil names when the payload is the number
// alone (more than the server lists).
func ParseOnline(p []byte) (n int, names []string, err error) {
	if field, _, more := cutField(p); !more {
		if n, err = ParseCount(field, 0, 1<<30); err != nil {
			return 0, nil, err
		}
		if n == 0 {
			return 0, []string{}, nil // nobody: the empty list
		}
		return n, nil, nil
	}
	if names, err = parseTailList(p); err != nil {
		return 0, nil, err
	}
	return len(names), names, nil
}

// AppendTryAgain appends a try_again frame: the join was not decided, and
// may be tried again after wait (whole milliseconds, at most MaxTryAgain).
func AppendTryAgain(dst []byte, wait time.Duration) []byte {
	var num [20]byte
	ms := strconv.AppendInt(num[:0], min(max(wait, 0), MaxTryAgain).Milliseconds(), 10)
	dst = AppendHeader(dst, TryAgain, int64(len(ms)))
	return append(dst, ms...)
}

// ParseTryAgain decodes a try_again payload: `<milliseconds>`, decimal,
// at most MaxTryAgain.
func ParseTryAgain(p []byte) (time.Duration, error) {
	ms, err := parseSize(p)
	if err != nil || len(p) > maxTryAgainDigits || time.Duration(ms)*time.Millisecond > MaxTryAgain {
		return 0, fmt.Errorf("%w: try_again %q", ErrMalformed, p)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// parseTailList decodes `<N> <user1> ... <userN>` that ends the payload,
// with N at most MaxRecipients.
func parseTailList(p []byte) ([]string, error) {
	names, err := ParseUsersList(p)
	if err != nil {
		return nil, err
	}
	if len(names) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d names", ErrBadCount, len(names))
	}
	return names, nil
}

// parseSize decodes a byte count: decimal, no sign or leading zeros, at
// most 2^62.
func parseSize(f []byte) (int64, error) {
	n, err := parseID(f)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("%w: size %q", ErrMalformed, f)
	}
	return int64(n), nil
}
