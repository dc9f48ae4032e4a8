package cluster

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
)

// Slow consumers, flood control, the join timeout and the cluster's
// metrics work in cluster mode as on one server.
func TestLimitsInCluster(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, "--send-queue", "1M", "--stall-timeout", "3s", "--flood-rate", "50", "--flood-burst", "10", "--join-timeout", "1s")
	n1, n2 := nodes[0], nodes[1]

	t.Run("join timeout", func(t *testing.T) {
		idle := dial(t, n2, "idle")
		idle.ExpectEnd()
	})
	t.Run("flood control paces across nodes and loses nothing", func(t *testing.T) {
		a, b := join(t, n1, "fa"), join(t, n2, "fb")
		a.waitList(usersList("fa", "fb"))
		var burst []byte
		for i := range 100 {
			burst = protocol.AppendMessage(burst, protocol.SendMessage, []string{"fb"}, []byte(strconv.Itoa(i)))
		}
		a.Write(burst)
		for i := range 100 {
			b.Expect(protocol.ForwardMessage, "1 fa "+strconv.Itoa(i))
		}
		if v := n1.metric(t, "chat_flood_delays_total"); v == 0 {
			t.Error("the burst was not paced")
		}
	})
	t.Run("a recipient that never reads is cut off; others chat on", func(t *testing.T) {
		sink := join(t, n2, "sink")
		sink.NC.(interface{ SetReadBuffer(int) error }).SetReadBuffer(4096)
		flooder := join(t, n1, "flooder")
		x, y := join(t, n1, "x"), join(t, n2, "y")
		x.waitList(usersList("flooder", "sink", "x", "y"))
		go func() {
			text := strings.Repeat("z", 60000)
			for i := 0; i < 400; i++ {
				flooder.NC.SetWriteDeadline(time.Now().Add(timeout))
				if _, err := flooder.NC.Write(protocol.AppendMessage(nil, protocol.SendMessage, []string{"sink"}, []byte(text))); err != nil {
					return
				}
			}
		}()
		n2.Out.WaitLine(t, "disconnected: sink", 2*timeout)
		n2.Errs.Wait(t, "sink cut off as a slow consumer", 1, timeout, func(s string) bool {
			return strings.Contains(s, "user=sink") && strings.Contains(s, `reason="slow consumer"`)
		})
		x.Tell(y.Conn, "still here")
		if n1.Out.Count(func(s string) bool { return s == "disconnected: flooder" }) != 0 {
			t.Error("the flooder was cut off")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		for _, m := range []struct {
			name   string
			labels []string
		}{
			{"chat_cluster_frames_out_total", []string{`peer="n2"`}},
			{"chat_cluster_join_seconds_count", nil},
		} {
			if v := n1.metric(t, m.name, m.labels...); v == 0 {
				t.Errorf("n1: %s%v = 0", m.name, m.labels)
			}
		}
		if v := n2.metric(t, "chat_cluster_frames_in_total", `peer="n1"`); v == 0 {
			t.Error("n2 counted no frames from n1")
		}
		body := scrapeText(t, n1)
		for _, name := range []string{"chat_cluster_gaps_total", "chat_cluster_engine_reconnects_total", "chat_cluster_node_silences_total", "chat_cluster_fences_total", "chat_cluster_dropped_total"} {
			if !strings.Contains(body, "# TYPE "+name) {
				t.Errorf("n1 serves no %s", name)
			}
		}
	})
}

// A recipient on another node that reads at an honest pace is not cut
// off by a flood: the pacing of one server holds across nodes.
func TestPacingAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, "--send-queue", "1M", "--stall-timeout", "20s")
	victim := join(t, nodes[1], "victim")
	attacker := join(t, nodes[0], "attacker")
	attacker.waitList(usersList("attacker", "victim"))
	const frames, size = 160, 64000 // 10 MB against a 1 MiB queue
	fast := make(chan struct{})
	victim.R = protocol.NewReader(bufio.NewReaderSize(&throttled{r: victim.NC, rate: 256 << 10, fast: fast, start: time.Now()}, 64<<10))
	go func() {
		attacker.NC.SetWriteDeadline(time.Time{})
		for i := range frames {
			text := strconv.Itoa(i) + " " + strings.Repeat("f", size-len(strconv.Itoa(i))-1)
			if _, err := attacker.NC.Write(protocol.AppendMessage(nil, protocol.SendMessage, []string{"victim"}, []byte(text))); err != nil {
				return
			}
		}
	}()
	time.AfterFunc(6*time.Second, func() { close(fast) })
	for i := range frames {
		victim.NC.SetReadDeadline(time.Now().Add(3 * timeout))
		h, p, err := func() (protocol.Header, []byte, error) {
			h, err := victim.R.ReadHeader()
			if err != nil {
				return h, nil, err
			}
			p, err := victim.R.ReadPayload(nil)
			return h, p, err
		}()
		if err != nil || h.Type != protocol.ForwardMessage || !strings.HasPrefix(string(p), fmt.Sprintf("1 attacker %d ", i)) {
			t.Fatalf("message %d: got %s %.30q, %v", i, h.Name, p, err)
		}
	}
	if n := nodes[1].Out.Count(func(s string) bool { return s == "disconnected: victim" }); n != 0 {
		t.Fatal("the victim was cut off")
	}
	if v := nodes[0].metric(t, "chat_senders_paused_total", `cause="backlog"`); v == 0 {
		t.Error("the attacker was never paused")
	}
}

// throttled reads at most 4 KiB at a time at about rate bytes per second
// until fast is closed.
type throttled struct {
	r     io.Reader
	rate  int
	fast  <-chan struct{}
	start time.Time
	total int
}

func (t *throttled) Read(p []byte) (int, error) {
	select {
	case <-t.fast:
		return t.r.Read(p)
	default:
	}
	n, err := t.r.Read(p[:min(len(p), 4<<10)])
	t.total += n
	// Keep to the rate: the reader's speed, not a wait for an event.
	time.Sleep(time.Until(t.start.Add(time.Duration(t.total) * time.Second / time.Duration(t.rate))))
	return n, err
}

// scrapeText returns n's metrics page.
func scrapeText(t *testing.T, n *node) string {
	t.Helper()
	resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", n.metrics))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
