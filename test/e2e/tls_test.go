package e2e

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/gochat/chat/internal/testcert"
)

// The TLS extension (docs/PROTOCOL.md "TLS", OPERATIONS.md "TLS"): the same
// frames inside TLS.

// tlsChat checks that two clients trusting ca chat through srv.
func tlsChat(t *testing.T, srv *server, ca string) {
	t.Helper()
	a, b := srv.freshName("tlsA"), srv.freshName("tlsB")
	ca1 := joinClient(t, srv, a, "--tls-ca", ca)
	cb := joinClient(t, srv, b, "--tls-ca", ca)
	ca1.send(t, "msg 1 "+b+" over TLS")
	srv.out.waitLine(t, "msg: "+a, timeout)
	cb.out.waitLine(t, "msg: "+a+": over TLS", timeout)
	syncList(t, srv, cb, a+" "+b)
	ca1.quit(t, srv)
	cb.quit(t, srv)
}

func TestTLS(t *testing.T) {
	t.Parallel()
	tc := testcert.New(t)
	cert, key := tc.Files(t)
	srv := startServer(t, "--tls-cert", cert, "--tls-key", key)

	// The server speaks TLS with that certificate.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", srv.addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with the server: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates; len(got) != 1 || !got[0].Equal(tc.Leaf) {
		t.Fatalf("the server's certificate is not the test's: %v", got)
	}
	conn.Close()

	t.Run("trusted", func(t *testing.T) {
		tlsChat(t, srv, cert)
	})

	// --tls trusts only the system's roots: the handshake fails, and the
	// client ends as one that cannot connect.
	t.Run("untrusted", func(t *testing.T) {
		c := startClient(t, srv.port, "mallory", "--tls")
		c.expectExit(t, 1, timeout)
		c.out.expectEnd(t, timeout)
		c.errs.waitClosed(t, timeout)
		if !c.errs.wroteAnything() {
			t.Errorf("the client printed nothing on stderr\n%s", c.dump())
		}
		tlsChat(t, srv, cert) // nothing printed for mallory in between
	})

	// A plain client cannot talk to a TLS server: its session is lost.
	t.Run("plain client", func(t *testing.T) {
		c := startClient(t, srv.port, "plain")
		c.expectDisconnectedExit1(t, "disconnected: connection to server lost")
		tlsChat(t, srv, cert)
	})
}
