// Package daemon runs the chat server as cmd/gochatd does: it takes the
// sockets a service manager passed (socket activation), opens the chat
// port, joins the cluster in cluster mode, serves metrics and the web
// client beside the chat, and shuts it all down when its context ends.
// The command's flags, and its signals, stay in cmd/gochatd.
package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gochat/chat/internal/activation"
	"github.com/gochat/chat/internal/cluster"
	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/web"
)

// Options is what Run serves: the settings of cmd/gochatd's flags.
type Options struct {
	// ChatAddr is the chat port's address (host:port).
	ChatAddr string
	// ChatAddrGiven says the command line named ChatAddr (-p or -a): a
	// chat socket passed in must then agree with it.
	ChatAddrGiven bool
	// Server is the chat server's settings (cmd/gochatd starts from
	// server.DefaultConfig), its Stdout and Logger included; Run logs to
	// that Logger too. In cluster mode Run sets its Hub.
	Server server.Config
	// Cluster, if not nil, makes the server a node of a cluster
	// (docs/CLUSTER.md). Run sets its ChatAddr, StallTimeout, PaceBacklog
	// and Logger from the rest.
	Cluster *cluster.Config
	// TLSCert and TLSKey, if set, are the PEM files of the certificate
	// and key the chat port and the web client's speak TLS with.
	TLSCert, TLSKey string
	// MetricsAddr, if set, is where Prometheus metrics are served, at
	// /metrics.
	MetricsAddr string
	// Web is the web client's settings (--http-addr and the rest); Run
	// sets its Limits from Server and its Inherited socket, if one was
	// passed.
	Web web.Flags
}

// shutdownTimeout bounds the server's graceful shutdown once ctx ends.
const shutdownTimeout = 5 * time.Second

// Run serves the chat as o says until ctx ends, then shuts down and
// returns nil; it returns an error, having closed what it opened, if the
// server cannot start or stops serving of its own accord.
func Run(ctx context.Context, o Options) error {
	if err := o.Server.Check(); err != nil {
		return err
	}
	// The chat port opens first, before anything else is built: a course
	// harness connects 10 ms after it starts the server, and a connection
	// succeeds once listen(2) has run, Accept or not (issue 19). In
	// cluster mode it opens only once the node is part of the cluster.
	passed, err := activation.Listeners(activation.Chat, activation.HTTP, activation.Metrics)
	if err == nil {
		given := map[string]flagAddr{}
		if o.ChatAddrGiven {
			given[activation.Chat] = flagAddr{o.ChatAddr, "-p/-a"}
		}
		if o.Web.Addr != "" {
			given[activation.HTTP] = flagAddr{o.Web.Addr, "--http-addr"}
		}
		if o.MetricsAddr != "" {
			given[activation.Metrics] = flagAddr{o.MetricsAddr, "--metrics-addr"}
		}
		err = agree(passed, given)
	}
	if err != nil {
		closeAll(passed)
		return fmt.Errorf("socket activation: %w", err)
	}
	var chatTCP net.Listener // the chat port's socket, TLS not yet added
	if ln, ok := passed[activation.Chat]; ok {
		chatTCP = server.Inherited(ln.(*net.TCPListener), nil)
	} else if o.Cluster == nil {
		if chatTCP, err = server.Listen(context.Background(), o.ChatAddr, nil); err != nil {
			closeAll(passed)
			return fmt.Errorf("cannot listen: %w", err)
		}
	}
	defer func() {
		if chatTCP != nil {
			chatTCP.Close() // the server has closed it already if it served
		}
		closeAll(passed)
	}()

	cfg := o.Server
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
		cfg.Logger = logger
	}
	var tlsCfg *tls.Config
	if o.TLSCert != "" {
		if tlsCfg, err = server.LoadTLS(o.TLSCert, o.TLSKey); err != nil {
			return err
		}
	}
	var node *cluster.Node
	if o.Cluster != nil {
		cl := *o.Cluster
		cl.ChatAddr, cl.StallTimeout, cl.PaceBacklog, cl.Logger = o.ChatAddr, cfg.StallTimeout, cfg.PaceBacklog, logger
		if chatTCP != nil {
			cl.ChatAddr = chatTCP.Addr().String()
		}
		if node, err = cluster.Start(ctx, cl); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		defer node.Close()
		cfg.Hub = node.Hub()
	}
	srv := server.New(cfg)
	if node != nil {
		if err := node.Register(srv.Registry()); err != nil {
			return err
		}
	}
	if chatTCP == nil {
		if chatTCP, err = server.Listen(context.Background(), o.ChatAddr, nil); err != nil {
			return fmt.Errorf("cannot listen: %w", err)
		}
	}
	ln := chatTCP
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "max_clients", cfg.MaxClients, "tls", tlsCfg != nil, "cluster", node != nil, "passed", passed[activation.Chat] != nil)

	// The HTTP listeners (metrics, web) limit connections per address as
	// the chat port does (issue 23).
	wf := o.Web
	wf.Limits = web.Limits{MaxConnsPerAddr: cfg.MaxConnsPerAddr, LimitLoopback: cfg.LimitLoopback}
	if mln, ok := passed[activation.Metrics]; ok || o.MetricsAddr != "" {
		if !ok {
			if mln, err = net.Listen("tcp", o.MetricsAddr); err != nil {
				return fmt.Errorf("cannot listen for metrics: %w", err)
			}
		}
		metrics, err := web.MetricsHandler(promhttp.HandlerFor(srv.Registry(), promhttp.HandlerOpts{}), wf.MetricsTokenFile)
		if err != nil {
			mln.Close()
			return err
		}
		logger.Info("serving metrics", "addr", "http://"+mln.Addr().String()+"/metrics", "token", wf.MetricsTokenFile != "")
		defer web.ServeMetrics(mln, metrics, wf.Limits, logger).Close()
	}
	if hln, ok := passed[activation.HTTP]; ok {
		wf.Inherited = hln.(*net.TCPListener)
	}
	wf.HeartbeatTimeout = cfg.HeartbeatTimeout
	webFront, err := wf.Start(srv.Serve, tlsCfg, cfg.MaxFileSize, logger)
	if err != nil {
		return fmt.Errorf("cannot serve the web client: %w", err)
	}
	defer webFront.Stop()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown incomplete", "err", err)
	}
	<-served
	return nil
}

// flagAddr is an address the command line gave, and the flags that gave it.
type flagAddr struct{ addr, flags string }

// agree checks each passed socket against the address its flags gave, if
// they gave one: the socket is taken over the flags, but only when they do
// not contradict it (docs/OPERATIONS.md, "Socket activation").
func agree(passed map[string]net.Listener, given map[string]flagAddr) error {
	for role, ln := range passed {
		g, ok := given[role]
		if !ok {
			continue
		}
		if err := activation.Agree(context.Background(), ln, g.addr); err != nil {
			return fmt.Errorf("the %s socket passed in does not agree with %s %s: %w", role, g.flags, g.addr, err)
		}
	}
	return nil
}

// closeAll closes the passed sockets that are still open.
func closeAll(passed map[string]net.Listener) {
	for _, ln := range passed {
		ln.Close()
	}
}
