package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

// static holds the page: plain HTML, CSS and JavaScript, served as they
// are (no build step).
//
//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response: scripts, styles and
// images from the page's own origin only (no inline script or style, no
// eval), WebSocket connections to that origin only, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// setSecurityHeaders sets the headers every response carries.
func setSecurityHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// pageConfig is what the page learns of the server, from config.json.
type pageConfig struct {
	MaxFileSize int64 `json:"maxFileSize"`
	// HeartbeatMs is the server's heartbeat timeout in milliseconds (0:
	// not told, the page's default).
	HeartbeatMs int64 `json:"heartbeatMs,omitempty"`
	// Peers are the page URLs of the cluster's other nodes (peers.go).
	Peers []string `json:"peers,omitempty"`
}

// pageHandler serves the files of static and config.json: GET and HEAD
// only, "/" for the page, revalidated on every load so that a new server's page replaces an
// old one at once.
func pageHandler(pc pageConfig) http.Handler {
	config, err := json.Marshal(pc)
	if err != nil {
		panic(err) // a struct of numbers always encodes
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/index.html" {
			// FileServer would redirect it to "/"; one name is enough.
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		if r.URL.Path == "/config.json" {
			w.Header().Set("Content-Type", "application/json")
			w.Write(config)
			return
		}
		files.ServeHTTP(w, r)
	})
}
