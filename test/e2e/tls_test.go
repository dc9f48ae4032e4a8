package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The TLS extension (docs/PROTOCOL.md "TLS", OPERATIONS.md "TLS"): the same
// frames inside TLS.

// selfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// and its key as PEM files in a fresh directory, and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chat e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

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
	cert, key := selfSigned(t)
	srv := startServer(t, "--tls-cert", cert, "--tls-key", key)

	// The server speaks TLS with that certificate.
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", srv.addr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with the server: %v", err)
	}
	if got := conn.ConnectionState().PeerCertificates; len(got) != 1 || got[0].Subject.CommonName != "chat e2e" {
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
