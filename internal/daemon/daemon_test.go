package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/freeport"
	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/web"
)

// Every goroutine Run starts ends by the time it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const timeout = 10 * time.Second

func addr(t *testing.T) string {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// options returns Options for a server on loopback, its stdout and logs
// collected.
func options(t *testing.T) (Options, *chattest.LineLog, *chattest.LineLog) {
	stdout, logs := chattest.NewLineLog(), chattest.NewLineLog()
	cfg := server.DefaultConfig()
	cfg.Stdout = stdout
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return Options{ChatAddr: addr(t), ChatAddrGiven: true, Server: cfg}, stdout, logs
}

// Run serves the chat, its metrics and the web client, and shuts all of
// it down when its context ends.
func TestRun(t *testing.T) {
	o, stdout, logs := options(t)
	o.MetricsAddr = addr(t)
	o.Web = web.Flags{Addr: addr(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	logs.WaitFunc(t, "the web client served", 1, func(l string) bool { return strings.Contains(l, `msg="serving the web client"`) })

	nc, err := net.Dial("tcp", o.ChatAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write(protocol.AppendJoin(nil, protocol.Join, "alice")); err != nil {
		t.Fatal(err)
	}
	stdout.Wait(t, "join: alice", 1)

	for _, get := range []struct{ url, want string }{
		{"http://" + o.MetricsAddr + "/metrics", "chat_"},
		{"http://" + o.Web.Addr + "/", "<html"},
	} {
		resp, err := http.Get(get.url)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), get.want) {
			t.Errorf("GET %s: %s, %v; want 200 with %q", get.url, resp.Status, err, get.want)
		}
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v after its context ended, want nil", err)
		}
	case <-time.After(timeout):
		t.Fatalf("Run still running %v after its context ended", timeout)
	}
	stdout.Wait(t, "disconnected: alice", 1)
	for _, a := range []string{o.ChatAddr, o.MetricsAddr, o.Web.Addr} {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still takes connections after Run returned", a)
		}
	}
}

// Run refuses what it cannot serve, closing what it opened: the chat port
// can be opened again at once.
func TestRunRefuses(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"settings that contradict each other", func(o *Options) { o.Server.PaceBacklog = o.Server.SendQueueBytes }, "PaceBacklog"},
		{"chat port taken", func(o *Options) { o.ChatAddr = busy.Addr().String() }, "cannot listen: "},
		{"no certificate", func(o *Options) {
			o.TLSCert, o.TLSKey = filepath.Join(t.TempDir(), "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
		}, "cert.pem"},
		{"metrics port taken", func(o *Options) { o.MetricsAddr = busy.Addr().String() }, "cannot listen for metrics: "},
		{"no metrics token", func(o *Options) {
			o.MetricsAddr, o.Web.MetricsTokenFile = addr(t), filepath.Join(t.TempDir(), "token")
		}, "--metrics-token-file"},
		{"web port taken", func(o *Options) { o.Web.Addr = busy.Addr().String() }, "cannot serve the web client: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _, _ := options(t)
			tc.edit(&o)
			err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error with %q", err, tc.want)
			}
			if o.ChatAddr == busy.Addr().String() {
				return
			}
			ln, err := net.Listen("tcp", o.ChatAddr)
			if err != nil {
				t.Fatalf("the chat port is still open after Run failed: %v", err)
			}
			ln.Close()
		})
	}
}
