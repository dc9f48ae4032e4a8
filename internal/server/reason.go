package server

import "fmt"

// closeReason says why a connection ended.
type closeReason uint8

// The close reasons.
const (
	reasonNone closeReason = iota
	reasonClientQuit
	reasonClientClosed
	reasonReadError
	reasonProtocolError
	reasonSlowConsumer
	reasonWriteError
	reasonServerShutdown
	reasonJoinTimeout
	reasonServerFull
	reasonNameUnavailable
	reasonSlowFileSender
	reasonStalledSender
	reasonInternalError
	reasonEvicted
	reasonUnavailable
	reasonTakenOver     // a resume took the session over (session.go)
	reasonResumeExpired // the session waited for a resume in vain
	reasonResumeFailed  // a resume that could not be granted
	reasonHeartbeat     // nothing arrived within the heartbeat timeout (heartbeat.go)
	numReasons
)

var reasonNames = [...]string{
	reasonNone:            "none",
	reasonClientQuit:      "client quit",
	reasonClientClosed:    "client closed connection",
	reasonReadError:       "read error",
	reasonProtocolError:   "protocol error",
	reasonSlowConsumer:    "slow consumer",
	reasonWriteError:      "write error",
	reasonServerShutdown:  "server shutdown",
	reasonJoinTimeout:     "join timeout",
	reasonServerFull:      "server full",
	reasonNameUnavailable: "username not available",
	reasonSlowFileSender:  "file sender below the minimum rate",
	reasonStalledSender:   "file sender stalled",
	reasonInternalError:   "internal error",
	reasonEvicted:         "evicted by the registry",
	reasonUnavailable:     "registry unavailable",
	reasonTakenOver:       "taken over by a resume",
	reasonResumeExpired:   "resume window passed",
	reasonResumeFailed:    "resume refused",
	reasonHeartbeat:       "silent past the heartbeat timeout",
}

// String returns the reason in words.
func (r closeReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// endError is returned by a frame handler that ends the connection for a
// reason of its own, answering it with last (nil: nothing).
type endError struct {
	reason closeReason
	last   []byte
	err    error // the cause, for the log; may be nil
}

func (e *endError) Error() string {
	if e.err == nil {
		return e.reason.String()
	}
	return fmt.Sprintf("%v: %v", e.reason, e.err)
}

func (e *endError) Unwrap() error { return e.err }

// errQuit is returned by the handler of a disconnect frame.
var errQuit = &endError{reason: reasonClientQuit}
