package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startEngine starts this node's embedded nats-server: JetStream on, a
// route port at cfg.Listen and routes to cfg.Peers. The node connects in
// process; the engine's client port (which its routing needs) is on
// loopback, on a free port, and takes only clients that know the
// returned token, which never leaves this process.
func startEngine(cfg Config, log *slog.Logger) (*natsserver.Server, string, error) {
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("--cluster-dir: %w", err)
	}
	token := fmt.Sprintf("%016x%016x", randomUint64(), randomUint64())
	var routes []*url.URL
	for _, p := range cfg.Peers {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: p})
	}
	opts := &natsserver.Options{
		ServerName:    cfg.Node,
		Host:          "127.0.0.1",
		Port:          -1,
		Authorization: token,
		JetStream:     true,
		StoreDir:      cfg.Dir,
		NoSigs:        true,
		Cluster: natsserver.ClusterOpts{
			Name:         cfg.Name,
			Host:         host,
			Port:         port,
			PingInterval: time.Second,
			MaxPingsOut:  3,
		},
		Routes:       routes,
		PingInterval: time.Second,
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("embedded engine: %w", err)
	}
	ns.SetLoggerV2(engineLogger{log.With("engine", "nats-server")}, false, false, false)
	go ns.Start() // owned by the engine; ends with Shutdown
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, "", errors.New("embedded engine did not start (is the cluster port free?)")
	}
	return ns, token, nil
}

// engineLogger passes the embedded engine's log to the node's logger,
// one level down: its notices are our debug records.
type engineLogger struct{ log *slog.Logger }

func (l engineLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l engineLogger) Warnf(format string, v ...any)   { l.log.Info(fmt.Sprintf(format, v...)) }
func (l engineLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l engineLogger) Errorf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l engineLogger) Debugf(format string, v ...any)  {}
func (l engineLogger) Tracef(format string, v ...any)  {}
