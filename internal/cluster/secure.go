package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// unixModes says whether files have Unix permission bits to check
// (Windows reports 0666 or 0777 for every file and folder).
const unixModes = runtime.GOOS != "windows"

// makeSecret is the command docs/CLUSTER.md and the errors give for making
// a cluster secret.
const makeSecret = "head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE"

// minSecret is the shortest secret taken, in bytes (after surrounding
// white space is cut): 16 bytes of base64 carry 96 bits.
const minSecret = 16

// errNoSecret refuses an embedded engine without a secret: its route port
// would take any NATS server that asks (issue 20: a plain nats-server
// joined, and read every message, file and session token).
var errNoSecret = errors.New("--cluster-listen needs --cluster-secret-file FILE, the same file on every node, " +
	"so that only nodes holding it can join (without it any NATS server that reaches the route port joins the cluster and reads everything); " +
	"make one with: " + makeSecret + " (or give --cluster-insecure, on a network nobody else can reach)")

// readSecret reads the cluster's secret from path. Like ssh with a private
// key, it refuses a file that group or others may read or write, and one
// that is not a regular file. No error says anything of the content.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--cluster-secret-file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("--cluster-secret-file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("--cluster-secret-file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); unixModes && perm&0o077 != 0 {
		return nil, fmt.Errorf("--cluster-secret-file %s: group or others may read or write it (mode %04o): run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("--cluster-secret-file %s: %w", path, err)
	}
	s := []byte(strings.TrimSpace(string(b)))
	if len(s) < minSecret {
		return nil, fmt.Errorf("--cluster-secret-file %s: shorter than %d bytes; make one with: %s", path, minSecret, makeSecret)
	}
	return s, nil
}

// routeCredentials derives the route user and password of the cluster
// named name from its secret. Routes carry them in their CONNECT, in clear
// unless the routes use TLS: deriving them keeps the secret itself off the
// wire, and a password of one cluster says nothing of another's.
func routeCredentials(secret []byte, name string) (user, pass string) {
	mac := func(label string) string {
		h := hmac.New(sha256.New, secret)
		h.Write([]byte("gochat route " + label + "\x00" + name))
		return hex.EncodeToString(h.Sum(nil))
	}
	return "gochat-" + mac("user")[:16], mac("password")
}

// routeTLS returns the TLS configuration of mutual TLS on routes: this
// node's certificate, and the CA that must have signed the other side's,
// whichever side dials (nats-server's cluster { tls { verify: true } }).
func routeTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--cluster-tls-cert/--cluster-tls-key: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--cluster-tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cluster-tls-ca %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ignoredLog logs the engine's messages that a node ignores because their
// sender holds no lease: once per ignoredLogEvery in which at least
// ignoredLogAfter came. A real node's first heartbeat or two may come
// before its lease reaches this node's cache, which is no news; a flood
// of forgeries is, and cannot flood the log either.
type ignoredLog struct {
	mu     sync.Mutex
	start  time.Time // of the current window
	count  int       // ignored in it
	logged bool      // the window was logged
}

const (
	ignoredLogEvery = 10 * time.Second
	ignoredLogAfter = 10
)

func (g *ignoredLog) note(log *slog.Logger, what, node string) {
	g.mu.Lock()
	now := time.Now()
	if now.Sub(g.start) > ignoredLogEvery {
		g.start, g.count, g.logged = now, 0, false
	}
	g.count++
	if g.count < ignoredLogAfter || g.logged {
		g.mu.Unlock()
		log.Debug("ignoring a message from a node that holds no lease", "what", what, "from", fmt.Sprintf("%.64q", node))
		return
	}
	g.logged = true
	g.mu.Unlock()
	log.Warn("ignoring messages from nodes that hold no lease in the registry (forgeries?)",
		"what", what, "last_from", fmt.Sprintf("%.64q", node), "ignored", ignoredLogAfter, "within", ignoredLogEvery)
}

// redactURL returns u with the password of its user information, if any,
// replaced by "xxxxx", or the user itself if it has no password (NATS
// takes a lone user as a token), for logs and errors; one that does not
// parse as scheme://host loses everything between "://" (or its start)
// and the last "@".
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		if p.User != nil {
			if _, ok := p.User.Password(); !ok {
				p.User = url.User("xxxxx")
			}
		}
		return p.Redacted()
	}
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.LastIndex(u, "@"); j > i {
			return u[:i+3] + "xxxxx" + u[j:]
		}
	}
	if j := strings.LastIndex(u, "@"); j >= 0 {
		return "xxxxx" + u[j:]
	}
	return u
}

// redactURLs is redactURL of each of us, joined by commas.
func redactURLs(us []string) string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = redactURL(u)
	}
	return strings.Join(out, ",")
}

// defaultStateDir returns the default --cluster-dir of node: a folder of
// the user's state ($XDG_STATE_HOME/gochatd/<node>, else
// ~/.local/state/gochatd/<node>), not a predictable path in the shared
// temporary folder, where another local user could have made it first.
func defaultStateDir(node string, getenv func(string) string, home func() (string, error)) (string, error) {
	base := getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(base) { // the XDG spec: a relative path is invalid and ignored
		h, err := home()
		if err != nil || h == "" {
			return "", fmt.Errorf("--cluster-dir: no default without $XDG_STATE_HOME or a home folder (%v): give one", err)
		}
		base = filepath.Join(h, ".local", "state")
	}
	return filepath.Join(base, "gochatd", sanitizeNode(node)), nil
}

// stateDir makes dir (mode 700) if it does not exist, and refuses it if
// it is not a folder of this user's that only this user may write to:
// another user could otherwise read the engine's state (the registry,
// session tokens included) or plant one.
func stateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--cluster-dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--cluster-dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--cluster-dir %s: not a folder", dir)
	}
	if uid, ok := fileOwner(st); ok && uid != os.Getuid() {
		return fmt.Errorf("--cluster-dir %s: owned by another user (uid %d)", dir, uid)
	}
	if perm := st.Mode().Perm(); unixModes && perm&0o022 != 0 {
		return fmt.Errorf("--cluster-dir %s: group or others may write to it (mode %04o): run chmod 700 %s", dir, perm, dir)
	}
	return nil
}
