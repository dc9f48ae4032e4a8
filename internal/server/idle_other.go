//go:build !unix

package server

import "net"

// waitReadable returns at once where the descriptor cannot be polled
// directly: the connection then keeps its read buffer while idle.
func waitReadable(net.Conn) {}
