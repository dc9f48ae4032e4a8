package bench

import (
	"context"
	"fmt"
	"io"
	"iter"
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

// webSystem returns the chat system whose clients are WebSocket clients
// of t, a server with the web front end on.
func webSystem(t *target, rbuf, wbuf int) *chatSystem {
	s := newChatSystem(t.Addr, 1, rbuf, wbuf)
	s.dial = func(ctx context.Context, name string) (*chatClient, error) {
		return dialWeb(ctx, t.wsURL, name, rbuf, wbuf)
	}
	return s
}

// inProcessWeb starts the server in this process, as inProcess does, with
// a web gateway beside its TCP listener.
func inProcessWeb(maxClients int) (*target, error) {
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
	return &target{Addr: ln.Addr().String(), stop: stop, wsURL: "ws://" + hln.Addr().String() + web.Path}, nil
}

// spawnWeb starts bin (a cmd/gochatd) in its own process with the web
// client on.
func spawnWeb(ctx context.Context, bin string, maxClients int, stderr io.Writer) (*target, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	t, err := spawnServer(ctx, bin, maxClients, stderr, "--http-addr", addr)
	if err != nil {
		return nil, err
	}
	t.wsURL = "ws://" + addr + web.Path
	return t, nil
}

func webRuns(cfg Config, stderr io.Writer) iter.Seq[job] {
	return func(yield func(job) bool) {
		for c := range tpCases(cfg) {
			if !yield(webThroughput(cfg, c)) {
				return
			}
		}
		if cfg.ServerBin == "" {
			for range cfg.ScaleClients {
				fmt.Fprintf(stderr, "web idle: skipped: it needs --server-bin (a cmd/gochatd, for --http-addr)\n")
			}
			return
		}
		for _, n := range cfg.ScaleClients {
			if !yield(webIdle(cfg, min(n, maxWebIdleClients))) {
				return
			}
		}
	}
}

// webTP is a web throughput run: the same workload with TCP clients and
// with WebSocket clients of one server.
type webTP struct{ tcp, ws tpResult }

// webThroughput runs the throughput workload with TCP clients and then
// with WebSocket clients of one in-process server.
func webThroughput(cfg Config, c tpCase) job {
	return trial[webTP]{
		workload: Web,
		title:    "web throughput",
		params:   fmt.Sprintf("clients=%d size=%dB recipients=%d %s server=in-process %s", c.n, c.size, c.r, durParam(cfg), loadParam()),
		baseName: "tcp", // measured with ours, on its server
		ours: side[webTP]{
			servers: one(func(context.Context, io.Writer) (*target, error) { return inProcessWeb(2*c.n + 16) }),
			measure: func(ctx context.Context, nodes []*target) (webTP, error) {
				var res webTP
				var err error
				measure := func(sys system) (tpResult, error) {
					return runThroughput(ctx, sys, everyone(c.n, c.r), c.size, cfg.Warmup, cfg.Duration, nil)
				}
				if res.tcp, err = measure(newChatSystem(nodes[0].Addr, cfg.SrcAddrs, 64<<10, 32<<10)); err != nil {
					return res, fmt.Errorf("tcp: %w", err)
				}
				if res.ws, err = measure(webSystem(nodes[0], 64<<10, 32<<10)); err != nil {
					return res, fmt.Errorf("websocket: %w", err)
				}
				return res, nil
			},
		},
		rows: func(row rowFunc, res, _ webTP) []Row {
			ws, tcp := res.ws, res.tcp
			return []Row{
				row("delivered, WebSocket clients", "msgs/s", ws.Delivered, tcp.Delivered, ">= 0.5x"),
				row("delivered, WebSocket clients", "MB/s", ws.MBps, tcp.MBps, ""),
				row("latency p50 under load", "ms", ms(ws.Lat.P50), ms(tcp.Lat.P50), ""),
				row("latency p99 under load", "ms", ms(ws.Lat.P99), ms(tcp.Lat.P99), ""),
			}
		},
	}
}

// webIdle weighs n idle TCP clients and then n idle WebSocket clients,
// each kind on a server process of its own (cfg.ServerBin).
func webIdle(cfg Config, n int) job {
	perClient := func(websocket bool) side[float64] {
		s := side[float64]{
			label: "tcp idle",
			servers: one(func(ctx context.Context, stderr io.Writer) (*target, error) {
				return spawnWeb(ctx, cfg.ServerBin, n+16, stderr)
			}),
			measure: func(ctx context.Context, nodes []*target) (float64, error) {
				return idleKiB(ctx, cfg, nodes[0], n, websocket)
			},
		}
		if websocket {
			s.label = "websocket idle"
		}
		return s
	}
	base := perClient(false)
	return trial[float64]{
		workload:  Web,
		title:     "web idle",
		params:    fmt.Sprintf("clients=%d server=%s %s", n, cfg.ServerBin, loadParam()),
		baseName:  "tcp",
		ours:      perClient(true),
		base:      &base,
		baseFirst: true,
		rows: func(row rowFunc, ws, tcp float64) []Row {
			return []Row{row("server RSS per idle client", "KiB", ws, tcp, "<= 2x")}
		},
	}
}

// idleKiB joins n idle clients (WebSocket ones if websocket) to t, a
// server in its own process, and returns how much its RSS grew per
// client, in KiB.
func idleKiB(ctx context.Context, cfg Config, t *target, n int, websocket bool) (float64, error) {
	base, err := readRSS(t.PID)
	if err != nil {
		return 0, err
	}
	sys := newChatSystem(t.Addr, cfg.SrcAddrs, 4<<10, 4<<10)
	if websocket {
		sys = webSystem(t, 4<<10, 4<<10)
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
