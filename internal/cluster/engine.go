package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// noClientPort is the client port the embedded engine is given: one no
// listener can bind (ports end at 65535), so the engine opens no client
// port at all, and the node connects in process (nats.InProcessServer).
//
// Options.DontListen would be the documented way, but in nats-server
// v2.15.2 it stops routing too: Start starts routing in a goroutine that
// waits for the client listener to be ready (server.go, Start:
// clientListenReady; route.go, StartRouting), and only AcceptLoop, which
// DontListen skips, closes that channel. AcceptLoop closes it on a failed
// listen as well, after reporting the failure through the logger's
// Fatalf, which engineLogger passes on without exiting. The engine's
// health check (monitor.go, healthz; read-only in v2.15.2, run hourly
// and logged) then reports the missing listener. Before issue 20
// the engine listened on a loopback client port (token-protected) that
// every local user could reach.
const noClientPort = 65536

// clientListenFailure is how the engine reports its deliberately failed
// client listen (server.go, AcceptLoop: "Error listening on port: %s").
var clientListenFailure = "Error listening on port: " + "127.0.0.1:" + strconv.Itoa(noClientPort)

// startEngine starts this node's embedded nats-server: JetStream on, a
// route port at cfg.Listen, routes to cfg.Peers, and no client port.
func startEngine(cfg Config, log *slog.Logger) (*natsserver.Server, error) {
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, err
	}
	var user, pass string
	if cfg.SecretFile != "" {
		secret, err := readSecret(cfg.SecretFile)
		if err != nil {
			return nil, err
		}
		user, pass = routeCredentials(secret, cfg.Name)
	} else {
		log.Warn("--cluster-insecure: the route port takes any NATS server that reaches it, which then reads and forges every message, file and session of the cluster; give every node --cluster-secret-file instead")
	}
	if cfg.Dir == "" {
		if cfg.Dir, err = defaultStateDir(cfg.Node, os.Getenv, os.UserHomeDir); err != nil {
			return nil, err
		}
	}
	if err := stateDir(cfg.Dir); err != nil {
		return nil, err
	}
	var routes []*url.URL
	for _, p := range cfg.Peers {
		u := &url.URL{Scheme: "nats-route", Host: p}
		if user != "" {
			u.User = url.UserPassword(user, pass)
		}
		routes = append(routes, u)
	}
	opts := &natsserver.Options{
		ServerName: cfg.Node,
		Host:       "127.0.0.1",
		Port:       noClientPort,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true,
		Cluster: natsserver.ClusterOpts{
			Name:         cfg.Name,
			Host:         host,
			Port:         port,
			Username:     user,
			Password:     pass,
			PingInterval: time.Second,
			MaxPingsOut:  3,
		},
		Routes:       routes,
		PingInterval: time.Second,
	}
	if cfg.TLSCert != "" {
		if opts.Cluster.TLSConfig, err = routeTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA); err != nil {
			return nil, err
		}
		opts.Cluster.TLSTimeout = 3 // seconds
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded engine: %w", err)
	}
	fatal := make(chan string, 16)
	ns.SetLoggerV2(engineLogger{log: log.With("engine", "nats-server"), fatal: fatal}, false, false, false)
	go ns.Start() // owned by the engine; ends with Shutdown
	// Ready once the route port listens (ReadyForConnections would wait
	// for the client listener, which never comes).
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for ns.ClusterAddr() == nil {
		select {
		case msg := <-fatal:
			ns.Shutdown()
			return nil, fmt.Errorf("embedded engine: %s", msg)
		case <-deadline.C:
			ns.Shutdown()
			return nil, errors.New("embedded engine did not start (is the cluster port free?)")
		case <-tick.C:
		}
	}
	return ns, nil
}

// engineLogger passes the embedded engine's log to the node's logger,
// one level down: its notices are our debug records. Its Fatalf never
// exits: the engine's fatal errors end the node through Start, and one
// of them (the client listen that must fail) is expected.
type engineLogger struct {
	log   *slog.Logger
	fatal chan<- string // the engine's fatal errors but the expected one, while there is room
}

func (l engineLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l engineLogger) Debugf(format string, v ...any)  {}
func (l engineLogger) Tracef(format string, v ...any)  {}

// Warnf passes the engine's warnings on as our notices, but for the
// engine's hourly health check, which finds no client listener
// (monitor.go, healthz: readyForConnections) and says so.
func (l engineLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "address "+strconv.Itoa(noClientPort)) {
		l.log.Debug(msg)
		return
	}
	l.log.Info(msg)
}

func (l engineLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, clientListenFailure) {
		l.log.Debug("no client port: the node connects in process")
		return
	}
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}

// Errorf passes the engine's errors on, saying in plain words what a
// refused route means: the engine names neither the flag nor the cause.
func (l engineLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	peer, _, _ := strings.Cut(msg, " - ")
	switch {
	case strings.Contains(msg, "Route Error 'Authorization Violation'"):
		l.log.Error("a node refused this node's route: the two do not hold the same --cluster-secret-file", "peer", peer)
	case strings.Contains(msg, "TLS route handshake error"):
		l.log.Error("a route failed its TLS handshake: the other side has no TLS, or a certificate not signed by --cluster-tls-ca", "peer", peer, "err", msg)
	case strings.Contains(msg, " - rid:") && strings.Contains(msg, natsserver.ErrAuthentication.Error()):
		l.log.Error("refused a route that did not prove the cluster's secret (a node with another --cluster-secret-file, or a stranger)", "peer", peer)
	default:
		l.log.Warn(msg)
	}
}
