package activation

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// env returns a lookup function over vars, as os.LookupEnv.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestParse(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		want    []Socket
		wantErr string
	}{
		{name: "nothing set", vars: map[string]string{}},
		{name: "no LISTEN_PID", vars: map[string]string{"LISTEN_FDS": "1"}},
		{name: "another process's", vars: map[string]string{"LISTEN_PID": "4243", "LISTEN_FDS": "1"}},
		{name: "no LISTEN_FDS", vars: map[string]string{"LISTEN_PID": "4242"}},
		{name: "zero", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "0"}},
		{name: "one unnamed", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1"},
			want: []Socket{{FD: 3}}},
		{name: "one named", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "chat"},
			want: []Socket{{FD: 3, Name: "chat"}}},
		{name: "one with an empty name list", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": ""},
			want: []Socket{{FD: 3}}},
		{name: "three named", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "http:chat:metrics"},
			want: []Socket{{FD: 3, Name: "http"}, {FD: 4, Name: "chat"}, {FD: 5, Name: "metrics"}}},
		{name: "two unnamed", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2"},
			want: []Socket{{FD: 3}, {FD: 4}}},
		{name: "too few names", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "chat"},
			wantErr: `LISTEN_FDNAMES="chat" names 1 sockets, LISTEN_FDS=2`},
		{name: "too many names", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "chat:http"},
			wantErr: "names 2 sockets, LISTEN_FDS=1"},
		{name: "pid not a number", vars: map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "1"},
			wantErr: `LISTEN_PID="me" is not a process id`},
		{name: "pid zero", vars: map[string]string{"LISTEN_PID": "0", "LISTEN_FDS": "1"},
			wantErr: "is not a process id"},
		{name: "count not a number", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "one"},
			wantErr: `LISTEN_FDS="one" is not a count`},
		{name: "negative count", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "-1"},
			wantErr: "is not a count"},
		{name: "huge count", vars: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1000000"},
			wantErr: "more than 64 sockets"},
		{name: "count of another process is not read", vars: map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "junk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(pid, env(tc.vars))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestAssign(t *testing.T) {
	roles := []string{"chat", "http", "metrics"}
	for _, tc := range []struct {
		name    string
		socks   []Socket
		want    map[string]int // role -> fd
		wantErr string
	}{
		{name: "lone unnamed is chat", socks: []Socket{{FD: 3}}, want: map[string]int{"chat": 3}},
		{name: "lone unit-named is chat", socks: []Socket{{FD: 3, Name: "gochatd.socket"}}, want: map[string]int{"chat": 3}},
		{name: "lone unknown is chat", socks: []Socket{{FD: 3, Name: "unknown"}}, want: map[string]int{"chat": 3}},
		{name: "lone http", socks: []Socket{{FD: 3, Name: "http"}}, want: map[string]int{"http": 3}},
		{name: "all three", socks: []Socket{{FD: 3, Name: "metrics"}, {FD: 4, Name: "chat"}, {FD: 5, Name: "http"}},
			want: map[string]int{"chat": 4, "http": 5, "metrics": 3}},
		{name: "several, one unnamed", socks: []Socket{{FD: 3, Name: "chat"}, {FD: 4}},
			wantErr: `socket 4 is named "": with several sockets, each must be named chat, http, metrics`},
		{name: "several, one unknown", socks: []Socket{{FD: 3, Name: "web"}, {FD: 4, Name: "chat"}},
			wantErr: `socket 3 is named "web"`},
		{name: "twice chat", socks: []Socket{{FD: 3, Name: "chat"}, {FD: 4, Name: "chat"}},
			wantErr: `two sockets are named "chat"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Assign(tc.socks, roles...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Assign = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fds := map[string]int{}
			for role, s := range got {
				fds[role] = s.FD
			}
			if !reflect.DeepEqual(fds, tc.want) {
				t.Fatalf("Assign = %v; want %v", fds, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("4242", "1", "chat", true)
	f.Add("4242", "3", "chat:http:metrics", true)
	f.Add("4242", "2", "", false)
	f.Add("17", "1", "", false)
	f.Add("4242", "-1", "::", true)
	f.Fuzz(func(t *testing.T, pid, fds, names string, named bool) {
		vars := map[string]string{"LISTEN_PID": pid, "LISTEN_FDS": fds}
		if named {
			vars["LISTEN_FDNAMES"] = names
		}
		socks, err := Parse(4242, env(vars))
		if err != nil {
			if socks != nil {
				t.Fatalf("sockets %v beside error %v", socks, err)
			}
			return
		}
		if len(socks) > maxFDs {
			t.Fatalf("%d sockets", len(socks))
		}
		for i, s := range socks {
			if s.FD != firstFD+i {
				t.Fatalf("socket %d has descriptor %d", i, s.FD)
			}
			if strings.Contains(s.Name, ":") {
				t.Fatalf("name %q holds the separator", s.Name)
			}
		}
		if len(socks) > 0 && strconv.Itoa(len(socks)) != strings.TrimLeft(fds, "+0") {
			t.Fatalf("LISTEN_FDS=%q gave %d sockets", fds, len(socks))
		}
	})
}

// helperEnv makes the test binary, re-executed by TestListeners, act as a
// server that takes its sockets.
const helperEnv = "ACTIVATION_TEST_HELPER"

// TestListeners passes real listening sockets to a process at descriptors
// 3 and 4, as a service manager does (LISTEN_PID set by the shell that
// execs it, whose pid it keeps), and checks what that process takes.
func TestListeners(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		return // the helper's own run of this test (TestMain runs it)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to exec the helper with its pid in LISTEN_PID")
	}
	for _, tc := range []struct {
		name  string
		names string // LISTEN_FDNAMES; "-" leaves it unset
		files int    // listening sockets passed
		want  []string
	}{
		{name: "one unnamed", names: "-", files: 1, want: []string{"chat 0", "env unset", "cloexec", "closed"}},
		{name: "two named", names: "metrics:chat", files: 2, want: []string{"chat 1", "metrics 0", "env unset", "cloexec", "closed"}},
		{name: "unnamed pair", names: "-", files: 2, want: []string{"error: socket 3 is named \"\"", "env unset", "closed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lns []*net.TCPListener
			var files []*os.File
			for range tc.files {
				ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				f, err := ln.File()
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				lns, files = append(lns, ln), append(files, f)
			}
			cmd := exec.Command(sh, "-c", `LISTEN_PID=$$ exec "$@"`, "sh", os.Args[0], "-test.run=^TestMain$")
			cmd.Env = append(os.Environ(), helperEnv+"=1", "LISTEN_FDS="+strconv.Itoa(tc.files))
			if tc.names != "-" {
				cmd.Env = append(cmd.Env, "LISTEN_FDNAMES="+tc.names)
			}
			cmd.ExtraFiles = files
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helper: %v\n%s", err, out)
			}
			var got []string
			ports := map[string]string{}
			for i, ln := range lns {
				ports[strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)] = strconv.Itoa(i)
			}
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				line := sc.Text()
				if role, port, ok := strings.Cut(line, " port "); ok {
					line = role + " " + ports[port] // which of the passed sockets it is
				}
				got = append(got, line)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			for i := range got {
				if i < len(want) && strings.HasPrefix(want[i], "error: ") && strings.HasPrefix(got[i], want[i]) {
					got[i] = want[i]
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("helper printed %q, want %q", got, want)
			}
		})
	}
}

// TestMain runs the tests, or, re-executed by TestListeners, the helper.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	os.Exit(m.Run())
}

// helper takes the passed sockets and prints what it got: each role and
// its port, whether the variables are gone, whether descriptor 3 is
// closed, and whether a listener's descriptor is close-on-exec.
func helper() int {
	lns, err := Listeners("chat", "http", "metrics")
	if err != nil {
		fmt.Println("error:", err)
	}
	for role, ln := range lns {
		fmt.Printf("%s port %d\n", role, ln.Addr().(*net.TCPAddr).Port)
		// The listener works: a connection to it is accepted.
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		a, err := ln.Accept()
		if err != nil {
			fmt.Println("accept:", err)
			return 1
		}
		a.Close()
		c.Close()
	}
	_, p := os.LookupEnv("LISTEN_PID")
	_, f := os.LookupEnv("LISTEN_FDS")
	_, n := os.LookupEnv("LISTEN_FDNAMES")
	if !p && !f && !n {
		fmt.Println("env unset")
	}
	// Descriptor 3 is closed, whether its listener took a duplicate of it
	// or it was refused; a descriptor a listener holds is close-on-exec.
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == unix.EBADF {
		fmt.Println("closed")
	}
	for _, ln := range lns {
		raw, err := ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			fmt.Println(err)
			return 1
		}
		raw.Control(func(fd uintptr) {
			if fl, err := unix.FcntlInt(fd, unix.F_GETFD, 0); err == nil && fl&unix.FD_CLOEXEC != 0 {
				fmt.Println("cloexec")
			}
		})
		break
	}
	return 0
}

func TestAgree(t *testing.T) {
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	all, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	loPort := strconv.Itoa(lo.Addr().(*net.TCPAddr).Port)
	allPort := strconv.Itoa(all.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		ln      net.Listener
		addr    string
		wantErr string // "" when they agree
	}{
		{lo, "127.0.0.1:" + loPort, ""},
		{lo, "localhost:" + loPort, ""},
		{lo, "127.0.0.1:0", ""},
		{lo, "127.0.0.1:1", "it is bound to port " + loPort + ", not 1"},
		{lo, "127.0.0.2:" + loPort, "it is bound to 127.0.0.1, not 127.0.0.2"},
		{lo, ":" + loPort, "it is bound to 127.0.0.1, not every address"},
		{lo, "0.0.0.0:" + loPort, "it is bound to 127.0.0.1, not 0.0.0.0"},
		{all, ":" + allPort, ""},
		{all, "0.0.0.0:" + allPort, ""},
		{all, "[::]:" + allPort, ""},
		{all, "localhost:" + allPort, "it is bound to ::, not localhost"},
		{lo, "127.0.0.1", "missing port"},
	} {
		err := Agree(context.Background(), tc.ln, tc.addr)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Agree(%s, %q) = %v, want nil", tc.ln.Addr(), tc.addr, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Agree(%s, %q) = %v, want an error containing %q", tc.ln.Addr(), tc.addr, err, tc.wantErr)
		}
	}
}
