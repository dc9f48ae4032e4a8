package bench

import (
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	// The defaults are the targets.
	if c.Clients[0] != 100 || c.Sizes[0] != 32 || c.Recipients[0] != 1 || c.LatClients != 1000 || c.Rates[0] != 20000 || c.FileSizes[0] != 1<<30 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestParseArgs(t *testing.T) {
	c, err := ParseArgs([]string{"--clients", "10,100", "--size=32,1K", "--duration", "2s", "--file-size", "64M", "--csv", "throughput", "files"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Clients, []int{10, 100}) || !slices.Equal(c.Sizes, []int{32, 1024}) || c.Duration != 2*time.Second ||
		!slices.Equal(c.FileSizes, []int64{64 << 20}) || !c.CSV || !slices.Equal(c.Workloads, []string{Throughput, Files}) {
		t.Fatalf("parsed %+v", c)
	}
	c, err = ParseArgs([]string{"all"}, io.Discard)
	if err != nil || !slices.Equal(c.Workloads, AllWorkloads) {
		t.Fatalf("all: %v %v", c.Workloads, err)
	}
	c, err = ParseArgs([]string{"--server-bin", "/bin/gochatd", "--baseline-bin", "/bin/old", "--starts", "31", "startup"}, io.Discard)
	if err != nil || !slices.Equal(c.Workloads, []string{Startup}) || c.Starts != 31 || c.BaselineBin != "/bin/old" {
		t.Fatalf("startup: %+v %v", c, err)
	}
	if slices.Contains(AllWorkloads, Startup) {
		t.Fatal("all runs startup, which needs --server-bin")
	}
	c, err = ParseArgs(nil, io.Discard)
	if err != nil || !slices.Equal(c.Workloads, AllWorkloads) {
		t.Fatalf("no workload: %v %v", c.Workloads, err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string][]string{
		"unknown workload":           {"bogus"},
		"zero duration":              {"--duration", "0s"},
		"huge duration":              {"--duration", "1h"},
		"negative warmup":            {"--warmup", "-1s"},
		"text too short for a stamp": {"--size", "8"},
		"text too long":              {"--size", "65537"},
		"bad file mode":              {"--file-mode", "plain,zip"},
		"more recipients than peers": {"--clients", "4", "--recipients", "5"},
		"recipients over 1024":       {"--clients", "2000", "--recipients", "1025"},
		"zero rate":                  {"--rate", "0"},
		"file over 1 GiB":            {"--file-size", "2G"},
		"empty file":                 {"--file-size", "0"},
		"not loopback":               {"--server-addr", "10.0.0.1:15000"},
		"public host":                {"--server-addr", "example.com:15000"},
		"no port":                    {"--server-addr", "127.0.0.1"},
		"addr and bin":               {"--server-addr", "127.0.0.1:1", "--server-bin", "/bin/true"},
		"too many src addrs":         {"--src-addrs", "300"},
		"startup without a binary":   {"startup"},
		"startup with no starts":     {"--server-bin", "/bin/true", "--starts", "0", "startup"},
		"startup and server-addr":    {"--server-bin", "/bin/true", "--server-addr", "127.0.0.1:1", "startup"},
		"baseline-bin elsewhere":     {"--baseline-bin", "/bin/true", "throughput"},
		"one scale client":           {"--scale-clients", "1"},
		"bad list":                   {"--clients", "1,,2"},
		"bad size list":              {"--size", "32,x"},
		"latency recipients":         {"--latency-clients", "3", "--latency-recipients", "4"},
	}
	for name, args := range cases {
		if _, err := ParseArgs(args, io.Discard); err == nil {
			t.Errorf("%s: %q accepted", name, strings.Join(args, " "))
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:15000", "127.3.4.5:1", "[::1]:80", "localhost:15000"} {
		if err := CheckLoopback(ok); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"192.168.1.1:80", "0.0.0.0:80", "8.8.8.8:53", "[::]:80", "127.0.0.1:0", "127.0.0.1:99999", "host:1", "127.0.0.1"} {
		if err := CheckLoopback(bad); err == nil {
			t.Errorf("CheckLoopback(%q) accepted", bad)
		}
	}
}

func TestParseList(t *testing.T) {
	v, err := ParseList("32, 1K,64KiB,1G", true)
	if err != nil || !slices.Equal(v, []int64{32, 1024, 64 << 10, 1 << 30}) {
		t.Fatalf("sizes %v %v", v, err)
	}
	if _, err := ParseList("1K", false); err == nil {
		t.Fatal("suffix accepted in a plain list")
	}
	if _, err := ParseList("-1", false); err == nil {
		t.Fatal("negative accepted")
	}
}

func TestWindowFor(t *testing.T) {
	if w := windowFor(32, 1); w != 1000 {
		t.Errorf("small messages: window %d, want 1000", w)
	}
	if w := windowFor(65536, 1); w != 15 {
		t.Errorf("64 KiB messages: window %d, want 15", w)
	}
	if w := windowFor(65536, 1024); w != 1 {
		t.Errorf("huge fan-out: window %d, want 1", w)
	}
}

func TestWorkerSpecRoundTrip(t *testing.T) {
	for _, addrs := range [][]string{{"127.0.0.1:15000"}, {"127.0.0.1:15001", "127.0.0.1:15002", "127.0.0.1:15003"}} {
		w := workerSpec{Addrs: addrs, Total: 200, Size: 32, clientRange: clientRange{Prefix: "bx_", First: 100, Count: 50, SrcAddrs: 8, Timeout: time.Minute, JoinRate: 333.5}}
		back, err := parseWorkerSpec(w.args())
		if err != nil || !reflect.DeepEqual(back, w) {
			t.Fatalf("round trip: %+v %v", back, err)
		}
	}
	one := []string{"127.0.0.1:1"}
	ok := clientRange{Prefix: "p", Count: 1, SrcAddrs: 1, Timeout: time.Second}
	with := func(f func(*clientRange)) clientRange {
		c := ok
		f(&c)
		return c
	}
	for _, bad := range []workerSpec{
		{Addrs: []string{"10.1.1.1:1"}, Total: 1, Size: 32, clientRange: ok},
		{Addrs: []string{"127.0.0.1:1", "10.1.1.1:1"}, Total: 1, Size: 32, clientRange: ok},
		{Addrs: one, Total: 1, Size: 32, clientRange: with(func(c *clientRange) { c.First = 1 })},
		{Addrs: one, Total: 1, Size: 32, clientRange: with(func(c *clientRange) { c.Prefix = "" })},
		{Addrs: one, Total: 1, Size: 3, clientRange: ok},
		{Addrs: one, Total: 1, Size: 32, clientRange: with(func(c *clientRange) { c.JoinRate = -1 })},
		{Addrs: one, Total: 1, Size: 32, clientRange: with(func(c *clientRange) { c.SrcAddrs = 251 })},
	} {
		if _, err := parseWorkerSpec(bad.args()); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	if _, err := parseWorkerSpec((workerSpec{Addrs: one, Total: 1, Size: 32, clientRange: ok}).args()); err != nil {
		t.Fatalf("the good spec of the bad ones: %v", err)
	}

	s := stormSpec{Addr: "127.0.0.1:15000", Dials: 64, clientRange: clientRange{Prefix: "bx_u", First: 500, Count: 500, SrcAddrs: 8, Timeout: time.Minute, JoinRate: 2000}}
	if back, err := parseStormSpec(s.args()); err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("storm round trip: %+v %v", back, err)
	}
	for _, bad := range []stormSpec{
		{Addr: "10.1.1.1:1", Dials: 1, clientRange: ok},
		{Addr: one[0], Dials: 0, clientRange: ok},
		{Addr: one[0], Dials: 1, clientRange: with(func(c *clientRange) { c.Count = 0 })},
		{Addr: one[0], Dials: 1, clientRange: with(func(c *clientRange) { c.Timeout = 0 })},
	} {
		if _, err := parseStormSpec(bad.args()); err == nil {
			t.Errorf("storm: accepted %+v", bad)
		}
	}
}
