package client

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gochat/chat/internal/protocol"
)

// What the client sent that the server has not said it took (the taken
// feature, with resume; docs/PROTOCOL.md, "taken"; issue 22). A server
// that grants it counts the client's messages and list requests it has
// taken, and says the count now and then (received) and in resumed. The
// client numbers the same frames as it writes them and keeps each until a
// count covers it; a resume sends again, before anything new, exactly the
// frames after the server's count. Before it, a line typed while the
// connection was already dead but not yet seen to be (a write that went
// into a socket nobody read, or was cut mid-frame) was lost without a
// word.

const (
	// maxSentBytes and maxSentFrames bound what the client keeps to send
	// again. The server says its count as soon as the client's input
	// pauses, and every 64 frames, so a live connection keeps a few
	// frames; the bound matters only while the connection is dead and not
	// yet seen to be, when writes still go into the socket's buffers
	// (a few hundred KiB on Linux) until they fill.
	maxSentBytes  = 1 << 20
	maxSentFrames = 4096
	// maxLostLabels is how many of the lines let go of unconfirmed (the
	// last) are named if they turn out lost.
	maxLostLabels = 5
	// labelRunes is how much of a message a label shows.
	labelRunes = 40
)

// sentFrame is a frame kept to send again, and what names it to a person.
type sentFrame struct {
	frame []byte
	label string
}

// lostLabel names a frame let go of unconfirmed: its number and label.
type lostLabel struct {
	n     uint64
	label string
}

// sendLog is the client's frames the server has not said it took. The
// frames are numbered 1, 2, 3... in the order they are written (add is
// called with wmu held), as the server counts them.
type sendLog struct {
	on bool // the server granted taken; set before the receiver starts, then read-only

	mu    sync.Mutex
	next  uint64      // the number the next frame gets; guarded by mu
	known uint64      // the server's count last learnt; guarded by mu
	first uint64      // the number of kept[0]; guarded by mu
	kept  []sentFrame // the frames numbered first..next-1; guarded by mu
	bytes int         // the bytes of kept; guarded by mu
	lost  []lostLabel // the last frames let go of unconfirmed (numbered known+1..first-1), at most maxLostLabels; guarded by mu
}

// init starts the numbering.
func (l *sendLog) init() {
	l.on = true
	l.next, l.first = 1, 1
}

// add numbers frame, which is being written, and keeps it (label names
// it), letting go of the oldest kept past the bounds.
func (l *sendLog) add(frame []byte, label string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kept = append(l.kept, sentFrame{frame, label})
	l.bytes += len(frame)
	l.next++
	for len(l.kept) > 1 && (l.bytes > maxSentBytes || len(l.kept) > maxSentFrames) {
		if len(l.lost) == maxLostLabels {
			l.lost = append(l.lost[:0], l.lost[1:]...)
		}
		l.lost = append(l.lost, lostLabel{l.first, l.kept[0].label})
		l.bytes -= len(l.kept[0].frame)
		l.kept[0] = sentFrame{}
		l.kept = l.kept[1:]
		l.first++
	}
}

// took takes the server's count n of the frames it has taken, and lets
// go of those. A count past what was sent is refused (a broken server);
// one behind what is known is stale.
func (l *sendLog) took(n uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n >= l.next {
		return fmt.Errorf("the server says it took %d frames of %d sent", n, l.next-1)
	}
	if n <= l.known {
		return nil
	}
	l.known = n
	for len(l.kept) > 0 && l.first <= n {
		l.bytes -= len(l.kept[0].frame)
		l.kept[0] = sentFrame{}
		l.kept = l.kept[1:]
		l.first++
	}
	if l.first <= n {
		l.first = n + 1
	}
	if len(l.kept) == 0 {
		l.kept = nil // let go of the array
	}
	l.lost = slices.DeleteFunc(l.lost, func(x lostLabel) bool { return x.n <= n })
	return nil
}

// resumeFrom is the session's resume: the server has taken the first n
// frames, exactly or at least (a node that took the session over from one
// whose count it does not know): either way the frames after n and after
// the last count learnt are sent again. It returns the frames to send
// again, in order, before anything new; how many frames after n were let
// go of (past the bounds) and so cannot be, with the labels of the last
// of them. From now on the frames are numbered after n: the server counts
// the frames sent again from n on. A count past what was sent (a broken
// server) is taken as all of it.
//
// An exact count does not confirm the frames up to it: a cluster's node
// confirms a frame only once the other nodes know what it did (the
// server's Committer), and says resumed with what it took. The frames
// taken and not confirmed stay kept, not sent again, until a received
// covers them: if that node dies too, they are sent again where the
// session resumes next.
func (l *sendLog) resumeFrom(n uint64, exact bool) (again []sentFrame, lost uint64, labels []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, l.next-1)
	// Frames the server said it took (known) were taken, whatever a node
	// that lost count says now.
	from := max(n, l.known)
	if l.first > from+1 {
		lost = l.first - 1 - from
		for _, x := range l.lost {
			if x.n > from {
				labels = append(labels, x.label)
			}
		}
	}
	var held, keep []sentFrame
	for i, f := range l.kept {
		switch num := l.first + uint64(i); {
		case num > from:
			keep = append(keep, f)
		case exact && num > l.known:
			held = append(held, f) // numbered up to n, without a gap
		}
	}
	again = slices.Clone(keep)
	l.kept, l.bytes = append(held, keep...), 0
	for _, f := range l.kept {
		l.bytes += len(f.frame)
	}
	if len(held) > 0 {
		l.lost = slices.DeleteFunc(l.lost, func(x lostLabel) bool { return x.n > from })
	} else {
		l.known, l.lost = n, nil
	}
	l.first = n + 1 - uint64(len(held))
	l.next = n + uint64(len(keep)) + 1
	if len(l.kept) == 0 {
		l.kept = nil
	}
	return again, lost, labels
}

// pending returns how many frames are kept.
func (l *sendLog) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.kept)
}

// messageLabel names a message to names of text for a person: `to bob,
// carol: "the text…"`, the text cut at labelRunes and the names after
// the third counted.
func messageLabel(names []string, text string) string {
	if utf8.RuneCountInString(text) > labelRunes {
		i := 0
		for j := range text {
			if i == labelRunes {
				text = text[:j] + "…"
				break
			}
			i++
		}
	}
	to := strings.Join(names[:min(len(names), 3)], ", ")
	if len(names) > 3 {
		to += fmt.Sprintf(" and %d more", len(names)-3)
	}
	return "to " + to + ": " + strconv.Quote(text)
}

// lostLine describes lines that may not have reached anyone: how many,
// and the labels of the last.
func lostLine(n uint64, labels []string) string {
	s := fmt.Sprintf("client: %d lines you typed may not have reached anyone (more than the client keeps to send again)", n)
	if len(labels) > 0 {
		if uint64(len(labels)) < n {
			s += "; the last: "
		} else {
			s += ": "
		}
		s += strings.Join(labels, "; ")
	}
	return s
}

// writeTaken writes frame, a message or a list request (label names it),
// numbering and keeping it first when the server counts them: a frame
// the connection cannot take now (it is lost) is sent again after the
// resume.
func (c *client) writeTaken(frame []byte, label string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sent.on {
		c.sent.add(frame, label)
	}
	return c.writeLocked(frame)
}

// takenFrame takes the server's received (payload p): its count of the
// frames it has taken.
func (c *client) takenFrame(p []byte) {
	if !c.sent.on {
		c.log.printf("client: ignoring received: taken not negotiated")
		return
	}
	n, err := protocol.ParseCountFrame(p)
	if err == nil {
		err = c.sent.took(n)
	}
	if err != nil {
		c.log.printf("client: ignoring received: %v", err)
	}
}

// sendAgain writes, on the connection just resumed (wmu held), the frames
// the server did not take, and says on stderr what it sent again and
// what it could not. r is the resumed frame's count.
func (c *client) sendAgain(r resumedCount) {
	if !c.sent.on {
		return
	}
	n, exact := r.taken, r.exact && r.has
	if !r.has {
		c.log.printf("client: the server did not say how many of your lines it took: sending again those it did not confirm")
	}
	again, lost, labels := c.sent.resumeFrom(n, exact)
	if lost > 0 {
		c.log.printf("%s", lostLine(lost, labels))
	}
	if len(again) == 0 {
		return
	}
	for _, f := range again {
		c.w.Write(f.frame) // an error shows in the flush
	}
	if c.flushLocked() != nil {
		return // lost again: they stay kept, for the next resume
	}
	if exact {
		c.log.printf("client: sent again %d lines you typed that had not reached the server", len(again))
	} else {
		// Named, so that a person knows which may come twice.
		names := make([]string, 0, maxLostLabels)
		for _, f := range again[max(0, len(again)-maxLostLabels):] {
			names = append(names, f.label)
		}
		last := ": "
		if len(again) > maxLostLabels {
			last = "; the last: "
		}
		c.log.printf("client: sent again %d lines you typed that the server that failed may not have taken: some may arrive twice%s%s", len(again), last, strings.Join(names, "; "))
	}
}
