package bench

import (
	"net"
	"strings"
	"testing"
)

func TestStampRoundTrip(t *testing.T) {
	for _, c := range []struct {
		idx int
		t   int64
	}{{0, 0}, {42, 123456789}, {maxStampIdx, 1<<63 - 1}} {
		text := newText(32)
		putStamp(text, c.idx, c.t)
		if strings.Trim(string(text[stampLen:]), "x") != "" {
			t.Fatalf("padding overwritten: %q", text)
		}
		idx, ts, ok := readStamp(text)
		if !ok || idx != c.idx || ts != c.t {
			t.Fatalf("readStamp(%q) = %d %d %v, want %d %d", text, idx, ts, ok, c.idx, c.t)
		}
	}
	for _, bad := range []string{"", "0000001", "0000001000000000000000g", "a000001000000000000000000"} {
		if _, _, ok := readStamp([]byte(bad)); ok {
			t.Errorf("readStamp(%q) ok", bad)
		}
	}
}

func TestForwardText(t *testing.T) {
	cases := map[string]string{"1 alice hi": "hi", "1 bob a b  c": "a b  c", "1 x ": ""}
	for in, want := range cases {
		got, ok := forwardText([]byte(in))
		if !ok || string(got) != want {
			t.Errorf("forwardText(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "1", "2 a b", "1 alice", "10 a b"} {
		if _, ok := forwardText([]byte(bad)); ok {
			t.Errorf("forwardText(%q) ok", bad)
		}
	}
}

func TestRecipientsAndSources(t *testing.T) {
	got := recipients(8, 3, 10)
	if len(got) != 3 || got[0] != 9 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("recipients = %v", got)
	}
	if ip := srcIP(9, 8); !ip.Equal(net.IPv4(127, 0, 0, 3)) {
		t.Fatalf("srcIP = %v", ip)
	}
	if !canUseSrc("127.0.0.1:5") || canUseSrc("[::1]:5") || canUseSrc("localhost:5") {
		t.Fatal("canUseSrc")
	}
}

func TestParseProcFiles(t *testing.T) {
	status := "Name:\tserver\nVmPeak:\t  123 kB\nVmRSS:\t   14520 kB\nThreads: 5\n"
	if v, err := parseStatusKB(status, "VmRSS:"); err != nil || v != 14520<<10 {
		t.Fatalf("VmRSS = %d %v", v, err)
	}
	if _, err := parseStatusKB("VmRSS: 12\n", "VmRSS:"); err == nil {
		t.Fatal("line without unit accepted")
	}
	limits := "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n"
	if v, err := parseOpenFilesLimit(limits); err != nil || v != 20000 {
		t.Fatalf("open files = %d %v", v, err)
	}
	if v, err := parseOpenFilesLimit("Max open files            unlimited            unlimited            files\n"); err != nil || v != -1 {
		t.Fatalf("unlimited = %d %v", v, err)
	}
}
