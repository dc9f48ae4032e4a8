package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/gochat/chat/internal/server"
)

// TestUserRecordVersions: a record of a session without resume is written
// as before (nodes of the earlier version read it); one with resume
// carries the token's hash and the window, and reads back the same; the
// earlier version's records stay readable.
func TestUserRecordVersions(t *testing.T) {
	sum := sha256.Sum256([]byte("token"))
	withResume := userEntry{node: "n1", inc: 0xabc, token: 7, resume: resumeInfo{hash: string(sum[:]), window: 30000, retain: 4096}}
	noCursor := withResume
	noCursor.resume.retain = 0
	v2 := withResume
	v2.resume.retain = server.DefaultResumeBuffer
	tests := []struct {
		name   string
		value  string
		want   userEntry
		prefix string // of the value written back
	}{
		{"earlier version", "abc 7 n1", userEntry{node: "n1", inc: 0xabc, token: 7}, "abc 7 n1"},
		{"node name with colon", "1 2 127.0.0.1:15000", userEntry{node: "127.0.0.1:15000", inc: 1, token: 2}, "1 2 127.0.0.1:15000"},
		{"with resume", string(withResume.value()), withResume, "v3 abc 7 30000 4096 "},
		{"with resume, nothing retained", string(noCursor.value()), noCursor, "v3 abc 7 30000 0 "},
		{"with resume, second version (no bound: the default)", "v2 abc 7 30000 " + hex.EncodeToString(sum[:]) + " n1", v2, "v3 abc 7 30000 1048576 "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUser([]byte(tc.value))
			if err != nil || got != tc.want {
				t.Fatalf("parseUser(%q) = %+v, %v; want %+v", tc.value, got, err, tc.want)
			}
			if back := string(got.value()); !strings.HasPrefix(back, tc.prefix) {
				t.Errorf("written back as %q, want it to start %q", back, tc.prefix)
			}
		})
	}
	for _, bad := range []string{
		"v2 abc 7 30000 00 n1",           // a hash of one byte
		"v2 abc 7 -1 " + hex64() + " n1", // a negative window
		"v2 abc 7 30000 " + hex64(),      // no node
		"v2 zz 7 30000 " + hex64() + " n1",
		"v3 abc 7 30000 " + hex64() + " n1",    // no bound
		"v3 abc 7 30000 -1 " + hex64() + " n1", // a negative bound
		"v3 abc 7 30000 4294967296 " + hex64() + " n1",
	} {
		if u, err := parseUser([]byte(bad)); err == nil {
			t.Errorf("parseUser(%q) = %+v, want an error", bad, u)
		}
	}
}

func hex64() string { return strings.Repeat("ab", sha256.Size) }
