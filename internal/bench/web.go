package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/web"
)

// Web is the workload that weighs the WebSocket endpoint against TCP in
// the same run: msgs/s between WebSocket clients and between TCP clients
// of one in-process server, and server RSS per idle client of each kind.
const Web = "web"

// maxWebIdleClients caps the idle clients of one kind: they all connect
// from this process.
const maxWebIdleClients = 10000

// dialWeb opens a WebSocket to url and starts a chat client on it whose
// writes are buffered wbuf bytes at a time (one WebSocket message per
// flush), as the TCP clients' are.
func dialWeb(ctx context.Context, url, name string, rbuf, wbuf int) (*chatClient, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	c, err := startChat(nc, name, rbuf, wbuf)
	if err != nil {
		nc.Close()
	}
	return c, err
}

// webTarget is a chat server with the web front end on.
type webTarget struct {
	*target
	wsURL string // ws://127.0.0.1:PORT/ws
}

// webSystem returns the chat system whose clients are WebSocket clients
// of t.
func (t *webTarget) webSystem(rbuf, wbuf int) *chatSystem {
	s := newChatSystem(t.Addr, 1, rbuf, wbuf)
	s.dial = func(ctx context.Context, name string) (*chatClient, error) {
		return dialWeb(ctx, t.wsURL, name, rbuf, wbuf)
	}
	return s
}

// inProcessWeb starts the server in this process, as inProcess does, with
// a web gateway beside its TCP listener.
func inProcessWeb(maxClients int) (*webTarget, error) {
	srv := server.New(server.Config{MaxClients: maxClients, Stdout: io.Discard})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, err
	}
	g, err := web.New(web.Config{}, hln.Addr())
	if err != nil {
		ln.Close()
		hln.Close()
		return nil, err
	}
	hs := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{}, 3)
	go func() { srv.Serve(ln); done <- struct{}{} }()
	go func() { srv.Serve(g); done <- struct{}{} }()
	go func() { hs.Serve(hln); done <- struct{}{} }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
		for range 3 {
			<-done
		}
	}
	return &webTarget{
		target: &target{Addr: ln.Addr().String(), stop: stop},
		wsURL:  "ws://" + hln.Addr().String() + web.Path,
	}, nil
}

// spawnWeb starts bin (a cmd/gochatd) in its own process with the web
// client on.
func spawnWeb(ctx context.Context, bin string, maxClients int, stderr io.Writer) (*webTarget, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	t, err := spawnServer(ctx, bin, maxClients, stderr, "--http-addr", addr)
	if err != nil {
		return nil, err
	}
	return &webTarget{target: t, wsURL: "ws://" + addr + web.Path}, nil
}

func webRows(ctx context.Context, cfg Config, stderr io.Writer) ([]Row, error) {
	var rows []Row
	for _, n := range cfg.Clients {
		for _, size := range cfg.Sizes {
			for _, r := range cfg.Recipients {
				if r > n {
					continue
				}
				row, err := webThroughput(ctx, cfg, n, size, r, stderr)
				rows = append(rows, row...)
				if err != nil {
					return rows, err
				}
			}
		}
	}
	for _, n := range cfg.ScaleClients {
		row, err := webIdle(ctx, cfg, min(n, maxWebIdleClients), stderr)
		rows = append(rows, row...)
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// webThroughput runs the throughput workload with WebSocket clients and
// with TCP clients of one in-process server.
func webThroughput(ctx context.Context, cfg Config, n, size, r int, stderr io.Writer) ([]Row, error) {
	params := fmt.Sprintf("clients=%d size=%dB recipients=%d %s server=in-process %s", n, size, r, durParam(cfg), loadParam())
	fmt.Fprintf(stderr, "web throughput %s ...\n", params)
	t, err := inProcessWeb(2*n + 16)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	tcp, err := runThroughput(ctx, newChatSystem(t.Addr, cfg.SrcAddrs, 64<<10, 32<<10), everyone(n, r), size, cfg.Warmup, cfg.Duration, nil)
	if err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	ws, err := runThroughput(ctx, t.webSystem(64<<10, 32<<10), everyone(n, r), size, cfg.Warmup, cfg.Duration, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	row := func(metric, unit string, o, b float64, target string) Row {
		return Row{Workload: Web, Params: params, Baseline: "tcp", Metric: metric, Unit: unit, Ours: o, Base: b, Target: target}
	}
	return []Row{
		row("delivered, WebSocket clients", "msgs/s", ws.Delivered, tcp.Delivered, ">= 0.5x"),
		row("delivered, WebSocket clients", "MB/s", ws.MBps, tcp.MBps, ""),
		row("latency p50 under load", "ms", ms(ws.Lat.P50), ms(tcp.Lat.P50), ""),
		row("latency p99 under load", "ms", ms(ws.Lat.P99), ms(tcp.Lat.P99), ""),
	}, nil
}

// webIdle weighs n idle WebSocket clients and n idle TCP clients, each
// kind on a server process of its own (cfg.ServerBin).
func webIdle(ctx context.Context, cfg Config, n int, stderr io.Writer) ([]Row, error) {
	params := fmt.Sprintf("clients=%d server=%s %s", n, cfg.ServerBin, loadParam())
	if cfg.ServerBin == "" {
		fmt.Fprintf(stderr, "web idle: skipped: it needs --server-bin (a cmd/gochatd, for --http-addr)\n")
		return nil, nil
	}
	fmt.Fprintf(stderr, "web idle %s ...\n", params)
	perClient := func(websocket bool) (float64, error) {
		t, err := spawnWeb(ctx, cfg.ServerBin, n+16, stderr)
		if err != nil {
			return 0, err
		}
		defer t.Close()
		base, err := readRSS(t.PID)
		if err != nil {
			return 0, err
		}
		sys := newChatSystem(t.Addr, cfg.SrcAddrs, 4<<10, 4<<10)
		if websocket {
			sys = t.webSystem(4<<10, 4<<10)
		}
		cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		if err := sys.Connect(cctx, n, func(int, []byte) {}); err != nil {
			sys.Close()
			return 0, err
		}
		defer sys.Close()
		// Let the server settle, then weigh it idle, as scale does.
		time.Sleep(2 * time.Second)
		idle, err := readRSS(t.PID)
		if err != nil {
			return 0, err
		}
		return float64(idle-base) / 1024 / float64(n), nil
	}
	tcp, err := perClient(false)
	if err != nil {
		return nil, fmt.Errorf("tcp idle: %w", err)
	}
	ws, err := perClient(true)
	if err != nil {
		return nil, fmt.Errorf("websocket idle: %w", err)
	}
	return []Row{{Workload: Web, Params: params, Baseline: "tcp", Metric: "server RSS per idle client", Unit: "KiB", Ours: ws, Base: tcp, Target: "<= 2x"}}, nil
}
