package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gochat/chat/internal/testbin"
)

// The course's launchers (course/server.py, course/client.py): copied
// beside a test harness that runs `python3 server.py -p PORT` and
// `python3 client.py -p PORT -u NAME`, they build the programs from the
// checkout named by GOCHAT_ROOT and run them unchanged.
func TestCourseLaunchers(t *testing.T) {
	t.Parallel()
	skipShort(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	// The interpreter itself, for runs with a bare PATH (python3 may be a
	// shim that needs one).
	out, err := exec.Command(python, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatal(err)
	}
	interp := strings.TrimSpace(string(out))
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on the PATH to build with")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	harness := t.TempDir()
	for _, f := range []string{"server.py", "client.py"} {
		b, err := os.ReadFile(filepath.Join(root, "course", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(harness, f), b)
	}
	cache := t.TempDir()
	env := append(os.Environ(),
		"GOCHAT_ROOT="+root,
		"GOCHAT_CACHE="+cache,
		"PATH="+filepath.Dir(goBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	// The first run builds: minutes on a loaded machine.
	const build = 5 * time.Minute

	port := testbin.FreePort(t)
	srv := startPython(t, python, harness, env, "server.py", "-p", itoa(port))
	if !waitListening(t, srv, net.JoinHostPort("localhost", itoa(port)), build) {
		t.Fatalf("the server never listened\n%s", srv.dump())
	}
	alice := startPython(t, python, harness, env, "client.py", "-p", itoa(port), "-u", "alice")
	bob := startPython(t, python, harness, env, "client.py", "-p", itoa(port), "-u", "bob")
	srv.out.waitUnordered(t, build, []string{"join: alice", "join: bob"})
	alice.send(t, "msg 1 bob hello from python")
	bob.out.waitLine(t, "msg: alice: hello from python", timeout)
	bob.send(t, "list")
	bob.out.waitLine(t, "list: alice bob", timeout)
	for _, c := range []*proc{alice, bob} {
		c.send(t, "quit")
		c.out.waitLine(t, "quitting", timeout)
		c.expectExit(t, 0, timeout)
	}
	srv.out.waitLines(t, timeout, "msg: alice", "request_users_list: bob")
	srv.out.waitUnordered(t, timeout, []string{"disconnected: alice", "disconnected: bob"})

	// The launcher became the server: a signal reaches it.
	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	srv.expectExit(t, 0, timeout)
	srv.out.expectEnd(t, timeout)

	// Built once, into the cache: a second run does not build again.
	bins, _ := filepath.Glob(filepath.Join(cache, "*", "gochat"))
	servers, _ := filepath.Glob(filepath.Join(cache, "*", "gochatd"))
	if bins = append(bins, servers...); len(bins) != 2 {
		t.Fatalf("cache holds %q, want gochatd and gochat", bins)
	}
	before := modTimes(t, bins)
	help := runPython(t, python, harness, env, "client.py", "-h")
	if !strings.HasPrefix(help, "gochat is a terminal chat client") {
		t.Fatalf("client.py -h printed %q", help)
	}
	if after := modTimes(t, bins); after != before {
		t.Fatalf("a second run built again: %s, then %s", before, after)
	}
	for _, e := range []string{"__pycache__"} {
		if _, err := os.Stat(filepath.Join(harness, e)); err == nil {
			t.Errorf("the launchers left %s beside the harness", e)
		}
	}

	// Without GOCHAT_ROOT, and away from the checkout, they look on the
	// PATH, and say what to do if they find nothing.
	bare := []string{"PATH=" + filepath.Dir(interp), "HOME=" + t.TempDir()}
	cmd := exec.Command(interp, "client.py", "-h")
	cmd.Dir, cmd.Env = harness, bare
	out, err = cmd.CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("set GOCHAT_ROOT")) {
		t.Fatalf("without a checkout or a program on the PATH: %v, %q", err, out)
	}
	cmd = exec.Command(interp, "client.py", "-h")
	cmd.Dir, cmd.Env = harness, []string{"PATH=" + filepath.Dir(bins[0]) + string(os.PathListSeparator) + filepath.Dir(interp), "HOME=" + t.TempDir()}
	if out, err := cmd.Output(); err != nil || !bytes.HasPrefix(out, []byte("gochat is a terminal chat client")) {
		t.Fatalf("with gochat on the PATH: %v, %q", err, out)
	}
}

// startPython runs python3 with args in dir, exactly as a harness does.
func startPython(t *testing.T, python, dir string, env []string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, "python3 "+strings.Join(args, " "), python, dir, args, nil, nil, env)
}

// runPython runs python3 with args in dir and returns its stdout.
func runPython(t *testing.T, python, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(python, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// modTimes renders the modification times of files.
func modTimes(t *testing.T, files []string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s ", filepath.Base(f), strconv.FormatInt(st.ModTime().UnixNano(), 10))
	}
	return b.String()
}
