package server

import (
	"sync"

	"github.com/gochat/chat/internal/protocol"
)

// extState is what a connection negotiated beyond chunked-file, and its
// uploads (docs/PROTOCOL.md, "Extensions").
type extState struct {
	// Set by hello before the join, then read-only (other connections
	// read presence once this one is in the hub).
	upload, notOnline, presence, online, tryAgain bool

	mu      sync.Mutex
	uploads map[uint64]*upload // by the client's id, until the upload's file_result is sent; guarded by mu
	wg      sync.WaitGroup     // the goroutines of uploads; waited for by endUploads
}

// accept takes feature f if this server knows it and the client has not
// asked for it already. It runs in hello, before the join.
func (c *conn) accept(f string) bool {
	resumes := c.srv.cfg.ResumeWindow > 0
	switch f {
	case protocol.FeatureChunkedFile:
		return takeOnce(&c.chunked, true)
	case protocol.FeatureCursor:
		// Only a cluster's node moves sessions (SessionMover), and only
		// there do frames come from other origins.
		_, moves := c.srv.cfg.Hub.(SessionMover)
		return takeOnce(&c.cursor, moves && resumes)
	case protocol.FeatureHeartbeat:
		return takeOnce(&c.hbOn, c.srv.cfg.HeartbeatTimeout > 0)
	case protocol.FeatureTaken:
		// Meaningful only with resume, as cursor is (the client asks
		// for it only with resume).
		return takeOnce(&c.taken, resumes)
	case protocol.FeatureResume:
		return takeOnce(&c.resume, resumes)
	}
	return c.ext.accept(f)
}

// takeOnce turns *on on and reports true if the server offers the
// feature (offered) and the client has not asked for it already.
func takeOnce(on *bool, offered bool) bool {
	if *on || !offered {
		return false
	}
	*on = true
	return true
}

// accept takes feature f if it is one of these extensions not yet taken.
func (e *extState) accept(f string) bool {
	var on *bool
	switch f {
	case protocol.FeatureFileUpload:
		on = &e.upload
	case protocol.FeatureNotOnline:
		on = &e.notOnline
	case protocol.FeaturePresence:
		on = &e.presence
	case protocol.FeatureOnline:
		on = &e.online
	case protocol.FeatureTryAgain:
		on = &e.tryAgain
	default:
		return false
	}
	return takeOnce(on, true)
}
