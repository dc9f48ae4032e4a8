package client

import (
	"slices"
	"strings"

	"github.com/gochat/chat/internal/protocol"
)

// receive reads frames until the connection ends. It is owned by Run and
// closes c.ended when it stops, once the downloads have settled (cut
// short, or saved and their lines printed).
func (c *client) receive(r *protocol.Reader) {
	defer close(c.ended)
	defer c.settle()
	defer c.stopAcker()
	defer c.stopHeartbeat()
	c.startHeartbeat()
	stood := false // c.stood is closed
	var h protocol.Header
	for ; ; c.frameDone(r, h) { // counts the frames of a session that may resume
		var err error
		h, err = r.ReadHeader()
		if err != nil {
			if nr := c.reconnect(err); nr != nil {
				r, h = nr, protocol.Header{}
				continue
			}
			c.settle() // the lines of files saved come before the last line
			c.lost()
			return
		}
		c.heard.Store(true)
		switch h.Type {
		case protocol.ResponseUsersList:
			p, ok := c.payload(r, h)
			if !ok {
				continue
			}
			names, err := protocol.ParseUsersList(p)
			if err != nil {
				c.log.printf("client: ignoring malformed %s: %v", h.Name, err)
				continue
			}
			c.seen(names)
			slices.Sort(names) // the server sorts too; print sorted whatever it sent
			c.out.print(Event{Kind: EventList, Names: names})
			c.gotReply()
		case protocol.ForwardMessage:
			p, ok := c.payload(r, h)
			if !ok {
				continue
			}
			sender, text, err := protocol.ParseForward(p)
			if err != nil {
				c.log.printf("client: ignoring malformed %s: %v", h.Name, err)
				continue
			}
			c.seen([]string{sender})
			c.printMsg(Event{Kind: EventMessage, Sender: sender, Text: string(text)}, sender == c.cfg.User)
		case protocol.ForwardFile:
			if err := c.receiveFile(r); err != nil {
				if nr := c.reconnect(err); nr != nil {
					r, h = nr, protocol.Header{}
					continue
				}
				c.settle()
				c.lost()
				return
			}
		case protocol.FileBegin, protocol.FileChunk, protocol.FileEnd, protocol.FileAbort:
			if !c.chunked {
				c.log.printf("client: ignoring %s: %v", h.Name, errNotChunked)
				continue
			}
			if h.Type == protocol.FileChunk {
				c.fileChunk(r, h)
			} else if p, ok := c.payload(r, h); ok {
				c.fileFrame(h.Type, p)
			}
		case protocol.FileReady, protocol.FileAck, protocol.FileResult:
			if !c.uploading {
				c.log.printf("client: ignoring %s: file-upload not negotiated", h.Name)
				continue
			}
			if p, ok := c.payload(r, h); ok {
				c.uploadFrame(h.Type, p)
			}
		case protocol.Online:
			if !c.online {
				c.log.printf("client: ignoring %s: online not negotiated", h.Name)
				continue
			}
			if p, ok := c.payload(r, h); ok {
				c.onlineFrame(p, &stood)
			}
		case protocol.NotOnline, protocol.Presence:
			if !c.notices {
				c.log.printf("client: ignoring %s: notices not negotiated", h.Name)
				continue
			}
			if p, ok := c.payload(r, h); ok {
				c.notice(h.Type, p)
			}
		case protocol.Session:
			if p, ok := c.payload(r, h); ok {
				c.sessionFrame(p)
			}
		case protocol.Cursor:
			if p, ok := c.payload(r, h); ok {
				c.cursorFrame(p)
			}
		case protocol.Ping, protocol.Pong:
			c.heartbeatFrame(r, h)
		case protocol.Received:
			if p, ok := c.payload(r, h); ok {
				c.takenFrame(p)
			}
		case protocol.ErrUnknownMessage:
			c.settle()
			c.sever("server received an unknown command")
			return
		case protocol.ErrServerFull:
			c.settle()
			c.sever("server full")
			return
		case protocol.ErrUsernameUnavailable:
			c.settle()
			c.sever("username not available")
			return
		default:
			c.log.printf("client: ignoring frame of type %q (%d bytes)", h.Name, h.Length)
		}
	}
}

// payload reads a frame's payload whole; one longer than the limits table
// allows for its type is skipped with a note. Payloads that fit c.buf
// (messages, file_* frames) are read into it: the slice is valid until the
// next call.
func (c *client) payload(r *protocol.Reader, h protocol.Header) ([]byte, bool) {
	if h.Length > c.limits.MaxPayload(protocol.ToClient, h.Type) {
		c.log.printf("client: ignoring %s of %d bytes", h.Name, h.Length)
		return nil, false
	}
	var buf []byte
	if h.Length <= int64(cap(c.buf)) {
		buf = c.buf
	}
	p, err := r.ReadPayload(buf)
	if err != nil {
		return nil, false // the next ReadHeader reports the error
	}
	return p, true
}

// onlineFrame passes the names of an online frame (payload p) to the Users
// hook, and says the join stood (c.stood; *stood once it is closed). The
// frame's count alone (more users online than the server lists) gives no
// name: Tab then completes those of lists, senders and join notices.
func (c *client) onlineFrame(p []byte, stood *bool) {
	_, names, err := protocol.ParseOnline(p)
	if err != nil {
		c.log.printf("client: ignoring malformed online: %v", err)
		return
	}
	if names != nil {
		c.seen(names)
	}
	if !*stood {
		*stood = true
		close(c.stood)
	}
}

// seen passes the usernames of a list or a sender to the Users hook.
func (c *client) seen(names []string) {
	if c.cfg.Hooks.Users != nil {
		c.cfg.Hooks.Users(names)
	}
}

// notice shows a not_online or presence frame (type t, payload p) on
// stderr.
func (c *client) notice(t protocol.Type, p []byte) {
	if t == protocol.NotOnline {
		names, err := protocol.ParseNotOnline(p)
		if err != nil {
			c.log.noticef(EventDiagnostic, "client: ignoring malformed %s: %v", t, err)
			return
		}
		c.log.noticef(EventDiagnostic, "client: not online: %s; they did not get it", strings.Join(names, ", "))
		return
	}
	event, arg, err := protocol.ParsePresence(p)
	if err != nil {
		c.log.noticef(EventDiagnostic, "client: ignoring malformed %s: %v", t, err)
		return
	}
	switch event {
	case protocol.PresenceJoined:
		c.seen([]string{arg})
	case protocol.PresenceLeft:
		if c.cfg.Hooks.Left != nil {
			c.cfg.Hooks.Left(arg)
		}
	}
	if !c.cfg.Presence {
		return // asked for the Users hook alone: nothing to show
	}
	switch event {
	case protocol.PresenceJoined:
		c.log.noticef(EventPresence, "client: %s joined", arg)
	case protocol.PresenceLeft:
		c.log.noticef(EventPresence, "client: %s left", arg)
	case protocol.PresencePaused:
		c.log.noticef(EventPresence, "client: more than %s users online: join and leave notices pause", arg)
	case protocol.PresenceResumed:
		c.log.noticef(EventPresence, "client: join and leave notices resume")
	}
}
