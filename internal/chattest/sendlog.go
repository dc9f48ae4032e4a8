package chattest

// SendLogCase is a case of the rules by which a client keeps what it sent
// and sends it again on a resume (the taken feature: docs/PROTOCOL.md,
// "The client's frames"). The terminal client (internal/client,
// TestSendLogResume) and the web page (test/browser, TestBrowserSendLog)
// must follow the same rules: both run these cases.
type SendLogCase struct {
	Name       string
	Sent, Size int      // frames sent, of Size bytes each, labelled l1, l2...
	Told       int      // the server's received before the loss (0: none)
	N          int      // resumed's count
	Exact      bool     // resumed's count is exact
	Again      int      // frames sent again: the last Again sent, in order
	Held       int      // frames taken and not confirmed, kept without being sent again
	Lost       int      // frames let go of past the bounds and not taken
	Labels     []string // the labels of the last of those
	Next       int      // the number of the next frame after the resume
}

// SendLogCases returns the cases for a client that keeps at most maxBytes
// and maxFrames of what it sent.
func SendLogCases(maxBytes, maxFrames int) []SendLogCase {
	return []SendLogCase{
		{Name: "nothing taken", Sent: 3, Size: 10, N: 0, Again: 3, Next: 4},
		{Name: "some taken", Sent: 5, Size: 10, Told: 2, N: 3, Again: 2, Next: 6},
		{Name: "all taken", Sent: 5, Size: 10, N: 5, Again: 0, Next: 6},
		{Name: "count past what was sent", Sent: 2, Size: 10, N: 9, Again: 0, Next: 3},
		// A node that lost count says less than the client was told:
		// what was told stands, what follows is sent again and
		// numbered after the new node's count.
		{Name: "lower bound under what was told", Sent: 5, Size: 10, Told: 3, N: 0, Again: 2, Next: 3},
		{Name: "lower bound over what was told", Sent: 5, Size: 10, Told: 1, N: 2, Again: 3, Next: 6},
		// Past the bounds the oldest are let go of: those the server
		// did not take are counted and the last named.
		{Name: "frames bound", Sent: maxFrames + 7, Size: 1, N: 0, Again: maxFrames, Lost: 7,
			Labels: []string{"l3", "l4", "l5", "l6", "l7"}, Next: maxFrames + 1},
		{Name: "bytes bound", Sent: 20, Size: maxBytes / 8, N: 10, Again: 8, Lost: 2,
			Labels: []string{"l11", "l12"}, Next: 19},
		{Name: "bytes bound, taken", Sent: 20, Size: maxBytes / 8, N: 12, Again: 8, Next: 21},
		{Name: "bytes bound, told", Sent: 20, Size: maxBytes / 8, Told: 11, N: 11, Again: 8, Lost: 1, Labels: []string{"l12"}, Next: 20},
		{Name: "one frame over the bytes bound is kept", Sent: 1, Size: 2 * maxBytes, N: 0, Again: 1, Next: 2},
		// An exact count does not confirm: what it took beyond the
		// last received stays kept, not sent again.
		{Name: "exact, taken not confirmed", Sent: 5, Size: 10, Told: 1, N: 3, Exact: true, Again: 2, Held: 2, Next: 6},
		{Name: "exact, all confirmed", Sent: 5, Size: 10, Told: 3, N: 3, Exact: true, Again: 2, Next: 6},
		{Name: "exact, none sent again", Sent: 5, Size: 10, N: 5, Exact: true, Held: 5, Next: 6},
		{Name: "exact, bytes bound", Sent: 20, Size: maxBytes / 8, N: 14, Exact: true, Again: 6, Held: 2, Next: 21},
		{Name: "exact, bytes bound, all let go of", Sent: 20, Size: maxBytes / 8, N: 12, Exact: true, Again: 8, Next: 21},
	}
}
