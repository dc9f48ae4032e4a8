package bench

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Smoke tests of the workloads' plumbing at toy sizes. They check that
// every message is accounted for, never how fast anything is.

func TestThroughputAndLatencyPlumbing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := inProcess(100, false)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ns, err := newNATSSystem()
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range []system{newChatSystem(srv.Addr, 2, 4<<10, 4<<10), ns} {
		tp, err := runThroughput(ctx, sys, 4, 40, 2, 50*time.Millisecond, 150*time.Millisecond)
		if err != nil {
			t.Fatalf("%s throughput: %v", sys.Name(), err)
		}
		if tp.Delivered <= 0 || tp.MBps <= 0 || tp.Lat.Count == 0 {
			t.Fatalf("%s throughput: nothing delivered: %+v", sys.Name(), tp)
		}
	}
	ns, err = newNATSSystem()
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range []system{newChatSystem(srv.Addr, 2, 4<<10, 4<<10), ns} {
		lat, err := runLatency(ctx, sys, 6, 500, 32, 1, 50*time.Millisecond, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("%s latency: %v", sys.Name(), err)
		}
		if lat.Lat.Count == 0 || lat.Lost != 0 {
			t.Fatalf("%s latency: %d measured, %d lost", sys.Name(), lat.Lat.Count, lat.Lost)
		}
	}
}

func TestFilesPlumbing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := inProcess(100, false)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, mode := range []string{ModePlain, ModeChunked} {
		res, err := runFiles(ctx, srv, 3<<20+7, 2, 200, mode, 30*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if res.MBps <= 0 || res.ChatRecv != res.ChatSent {
			t.Fatalf("%s: %+v", mode, res)
		}
	}
	if _, err := tcpCopy(ctx, 3<<20+7, 2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestWorkerProtocol runs a scale worker in this process, over pipes.
func TestWorkerProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	srv, err := inProcess(100, false)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const n = 6
	spec := workerSpec{Addr: srv.Addr, Prefix: "wt_", First: 0, Count: n, Total: n, SrcAddrs: 3, Size: 32, Timeout: 20 * time.Second}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- RunWorker(spec.args(), inR, outW, io.Discard)
		outW.Close()
	}()
	lines := bufio.NewScanner(outR)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("worker ended early: %v", lines.Err())
		}
		return lines.Text()
	}
	if f := strings.Fields(next()); len(f) != 4 || f[0] != "joined" || f[1] != strconv.Itoa(n) || f[2] != "0" {
		t.Fatalf("joined line %q", f)
	}
	// Wait until the server has them all, as runScale's probe does.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	probe, err := dialChat(ctx, srv.Addr, nil, "wt_probe", 4<<10, 4<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.nc.Close()
	go probe.readLoop(handlers{})
	if err := waitJoined(ctx, probe, "wt_", n+1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		io.WriteString(inW, "round\n")
		f := strings.SplitN(next(), " ", 3)
		if len(f) != 3 || f[0] != "round" || f[1] != strconv.Itoa(n) {
			t.Fatalf("round line %q", f)
		}
		var h Histogram
		if err := h.UnmarshalText([]byte(f[2])); err != nil || h.Count() != n {
			t.Fatalf("round histogram %q: %v", f[2], err)
		}
	}
	io.WriteString(inW, "quit\n")
	if c := <-code; c != 0 {
		t.Fatalf("worker exit %d", c)
	}
}
