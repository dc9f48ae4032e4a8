// Package testcert makes TLS certificates for the tests of the programs'
// TLS (the server's --tls-cert/--tls-key, the client's --tls-ca, the web
// front end's HTTPS, mutual TLS between cluster nodes).
package testcert

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

// Cert is a certificate for 127.0.0.1 and localhost, valid from an hour
// ago to a day ahead, self-signed (New) or issued by a CA (CA.Issue), with
// what tests need of it.
type Cert struct {
	TLS  tls.Certificate // the certificate and its key, for a server
	Leaf *x509.Certificate
	Pool *x509.CertPool // trusts exactly this certificate (New) or its CA (CA.Issue)
}

// New makes a certificate, failing t if it cannot.
func New(t testing.TB) Cert {
	t.Helper()
	key, leaf := selfSignedCA(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: loopbackIPs,
		DNSNames:    loopbackNames,
	})
	return newCert(key, leaf, leaf)
}

// The addresses and names of loopback, that New's and Issue's certificates
// are for.
var (
	loopbackIPs   = []net.IP{net.IPv4(127, 0, 0, 1)}
	loopbackNames = []string{"localhost"}
)

// selfSignedCA makes a key and a self-signed certificate authority from
// tmpl (serial 1, may sign certificates), failing t if it cannot.
func selfSignedCA(t testing.TB, tmpl *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(1)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	return create(t, tmpl, nil, nil)
}

// create makes a key and a certificate from tmpl for it, valid from an
// hour ago to a day ahead, signed by parent with parentKey, or self-signed
// where parent is nil; it fails t if it cannot.
func create(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, leaf
}

// newCert returns the Cert of key and leaf, whose Pool trusts root.
func newCert(key *ecdsa.PrivateKey, leaf, root *x509.Certificate) Cert {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return Cert{TLS: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, Leaf: leaf, Pool: pool}
}

// ServerConfig returns a server TLS configuration with the certificate.
func (c Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS12}
}

// Files writes the certificate and its key as PEM files in a fresh
// directory of t's, and returns their paths.
func (c Cert) Files(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{certFile, "CERTIFICATE", c.TLS.Certificate[0]}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// CA is a certificate authority for tests of mutual TLS: it issues
// certificates that serve and authenticate clients alike, as the routes
// between cluster nodes need (each side is both).
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a certificate authority, failing t if it cannot.
func NewCA(t testing.TB) CA {
	t.Helper()
	key, cert := selfSignedCA(t, &x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}})
	return CA{cert: cert, key: key}
}

// File writes the authority's certificate as a PEM file in a fresh
// directory of t's, and returns its path.
func (ca CA) File(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue makes a certificate signed by the authority for 127.0.0.1 and
// localhost, for servers and clients both.
func (ca CA) Issue(t testing.TB, name string) Cert {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	key, leaf := create(t, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  loopbackIPs,
		DNSNames:     loopbackNames,
	}, ca.cert, ca.key)
	return newCert(key, leaf, ca.cert)
}
