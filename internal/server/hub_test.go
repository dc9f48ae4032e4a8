package server_test

import (
	"testing"

	"github.com/gochat/chat/internal/server"
	"github.com/gochat/chat/internal/server/hubtest"
)

func TestLocalHubContract(t *testing.T) {
	hubtest.Run(t, func(t *testing.T, maxUsers int) hubtest.Fixture {
		return hubtest.Fixture{Hubs: []server.Hub{server.NewLocalHub()}}
	})
}
