package bench

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startNATS starts an embedded nats-server on a free loopback port.
func startNATS() (*natsserver.Server, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host:    "127.0.0.1",
		Port:    -1,
		NoLog:   true,
		NoSigs:  true,
		MaxConn: 1 << 20,
	})
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("nats-server did not start")
	}
	return ns, nil
}

// natsSystem is the baseline: an embedded nats-server, each client
// subscribed to its own subject, a message to R recipients published once
// to each recipient's subject.
type natsSystem struct {
	ns     *natsserver.Server
	conns  []*nats.Conn
	closed sync.Once
}

func newNATSSystem() (*natsSystem, error) {
	ns, err := startNATS()
	if err != nil {
		return nil, err
	}
	return &natsSystem{ns: ns}, nil
}

func (s *natsSystem) Name() string { return "nats-server" }

func subject(i int) string { return "bench." + strconv.Itoa(i) }

func (s *natsSystem) Connect(ctx context.Context, n int, sk sink) error {
	s.conns = make([]*nats.Conn, n)
	url := s.ns.ClientURL()
	return parallel(n, 32, func(i int) error {
		nc, err := nats.Connect(url, nats.NoReconnect(), nats.Name("bench-"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		s.conns[i] = nc
		sub, err := nc.Subscribe(subject(i), func(m *nats.Msg) { sk(i, m.Data) })
		if err != nil {
			return err
		}
		// The window of unacknowledged messages bounds what is pending;
		// lift the client's own limits so that they never drop.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return err
		}
		return nc.FlushWithContext(ctx)
	})
}

func (s *natsSystem) Sender(i int, rcpts []int) (func([]byte) error, func() error) {
	subs := make([]string, len(rcpts))
	for k, r := range rcpts {
		subs[k] = subject(r)
	}
	nc := s.conns[i]
	send := func(text []byte) error {
		for _, sub := range subs {
			if err := nc.Publish(sub, text); err != nil {
				return err
			}
		}
		return nil
	}
	// nats.go's flusher goroutine writes what Publish buffered.
	return send, func() error { return nil }
}

func (s *natsSystem) Close() { s.closed.Do(s.close) }

func (s *natsSystem) close() {
	for _, nc := range s.conns {
		if nc != nil {
			nc.Close()
		}
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
