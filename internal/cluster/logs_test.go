package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/freeport"
)

// logBuffer is a bytes.Buffer that a logger may write to while a test
// reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// connectedLine returns the "connected to the engine" record of logs.
func connectedLine(t *testing.T, logs string) string {
	t.Helper()
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "connected to the engine") {
			return line
		}
	}
	t.Fatalf("no \"connected to the engine\" record in:\n%s", logs)
	return ""
}

// TestConnectedNamesTheEngine checks that a node says truly what it is
// connected to (issue 23 item 16): an external server by its URL, with a
// password or a token redacted (nats.go's ConnectedUrlRedacted shows a
// token in clear), and the embedded engine as such, not as NATS's default
// URL, where nothing listens.
func TestConnectedNamesTheEngine(t *testing.T) {
	engine, err := url.Parse(testEngines(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, user string }{
		{"password", "alice:s3cret"},
		{"token", "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs logBuffer
			u := "nats://" + tc.user + "@" + engine.Host
			testClusterConfigured(t, 1, 5, func(_ int, c *Config) {
				c.NATS = []string{u}
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			line := connectedLine(t, logs.String())
			if strings.Contains(line, "s3cret") || !strings.Contains(line, "@"+engine.Host) {
				t.Errorf("connected through %s, logged %q: want the server's address, its secret redacted", u, line)
			}
		})
	}
	t.Run("embedded", func(t *testing.T) {
		// Two nodes: JetStream in a cluster of one route-less server
		// does not start.
		var ports [2]int
		for i := range ports {
			p, err := freeport.Pick()
			if err != nil {
				t.Fatal(err)
			}
			ports[i] = p
		}
		var logs [2]logBuffer
		var nodes [2]*Node
		var errs [2]error
		var wg sync.WaitGroup
		for i := range nodes {
			cfg := Config{
				Name:       "embedded",
				Node:       fmt.Sprint("e", i),
				ChatAddr:   fmt.Sprintf("127.0.0.1:%d", 15000+i),
				MaxClients: 5,
				Listen:     fmt.Sprintf("127.0.0.1:%d", ports[i]),
				Peers:      []string{fmt.Sprintf("127.0.0.1:%d", ports[1-i])},
				Insecure:   true,
				Dir:        t.TempDir(),
				Replicas:   1,
				Wait:       30 * time.Second,
				Logger:     slog.New(slog.NewTextHandler(&logs[i], nil)),
			}
			wg.Go(func() { nodes[i], errs[i] = Start(context.Background(), cfg) })
		}
		wg.Wait()
		for i, n := range nodes {
			if n != nil {
				defer n.Close()
			}
			if errs[i] != nil {
				t.Fatalf("node %d: %v", i, errs[i])
			}
		}
		for i := range nodes {
			line := connectedLine(t, logs[i].String())
			if !strings.Contains(line, `server="embedded, in process"`) || strings.Contains(line, "4222") {
				t.Errorf("embedded engine logged %q", line)
			}
		}
	})
}
