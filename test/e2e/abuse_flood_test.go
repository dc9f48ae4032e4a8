package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/chattest"
	"github.com/gochat/chat/internal/protocol"
)

// throttle makes rc read at rate bytes per second until the returned
// function is called.
func throttle(rc *chattest.Conn, rate int) (unthrottle func()) {
	slow, unthrottle := chattest.Throttle(rc.NC, rate)
	rc.R = protocol.NewReader(slow)
	return unthrottle
}

// sendBurst writes b to rc in the background, with no deadline: the server
// paces it for as long as it takes.
func sendBurst(rc *chattest.Conn, b []byte) {
	rc.NC.SetWriteDeadline(time.Time{})
	go rc.NC.Write(b)
}

// floodText is the i-th text of a flood: a number, then filler up to size
// bytes.
func floodText(i, size int) string {
	n := strconv.Itoa(i) + " "
	return n + strings.Repeat("f", size-len(n))
}

// expectFlood reads n flood texts of size bytes from each sender in
// senders, in order per sender, as forward_message frames on rc.
func expectFlood(t *testing.T, rc *chattest.Conn, senders []string, n, size int) {
	t.Helper()
	next := make(map[string]int)
	rc.Timeout = 3 * timeout
	for got := 0; got < n*len(senders); got++ {
		h, p, err := rc.ReadFrame()
		if err != nil {
			t.Fatalf("%s after %d flood messages: %v", rc.Name, got, err)
		}
		if h.Type != protocol.ForwardMessage {
			t.Fatalf("%s got %s %.80q", rc.Name, h.Name, p)
		}
		sender, text, _ := strings.Cut(strings.TrimPrefix(string(p), "1 "), " ")
		if want := floodText(next[sender], size); text != want {
			t.Fatalf("%s: message %d from %s is %.24q..., want %.24q...", rc.Name, next[sender], sender, text, want)
		}
		next[sender]++
	}
}

// The attack of the issue "One joined user must not be able to get
// everyone else cut off": a flood of near-maximal messages at victims that
// read at an honest pace. The senders are paced; no victim is cut off, and
// nothing is lost.
func TestAbuseFloodAtHonestReaders(t *testing.T) {
	const size = 64000
	cases := []struct {
		name      string
		attackers int
		victims   int
		frames    int // per attacker
		rate      int // each victim's bytes per second while throttled
	}{
		// 10 MB in one burst against a 1 MiB queue and 256 KB/s.
		{"one attacker, one victim at 256 KB/s", 1, 1, 160, 256 << 10},
		// Every frame names all 20 victims: 2.5 MB for each.
		{"one attacker, 20 victims at 256 KB/s", 1, 20, 40, 256 << 10},
		// 10 MB from ten users at once against 1 MB/s.
		{"ten attackers, one victim at 1 MB/s", 10, 1, 16, 1 << 20},
	}
	for _, pacing := range []bool{true, false} {
		for _, tc := range cases {
			if !pacing && tc.victims > 1 {
				continue
			}
			name := tc.name
			if !pacing {
				name = "without pacing: " + name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				args := []string{"--send-queue", "1M", "--stall-timeout", "20s", "--max-clients", "40"}
				if !pacing {
					args = append(args, "--pace-backlog", "0")
				}
				srv := startServer(t, args...)
				var victims []*chattest.Conn
				var names []string
				var unthrottle []func()
				for i := range tc.victims {
					name := "victim" + strconv.Itoa(i)
					v := joinLenient(t, srv, name)
					unthrottle = append(unthrottle, throttle(v, tc.rate))
					victims, names = append(victims, v), append(names, name)
				}
				var attackers []string
				for i := range tc.attackers {
					name := "attacker" + strconv.Itoa(i)
					a := joinLenient(t, srv, name)
					attackers = append(attackers, name)
					var burst []byte
					for j := range tc.frames {
						burst = append(burst, fr("send_message", strconv.Itoa(len(names))+" "+strings.Join(names, " ")+" "+floodText(j, size))...)
					}
					sendBurst(a, burst) // paced by the server; the test reads the outcome from the victims
				}
				if !pacing {
					// The same flood without pacing cuts the victim off,
					// even while it reads: the flood is strong enough to
					// matter.
					victims[0].Timeout = 3 * timeout
					go func() {
						for {
							if _, _, err := victims[0].ReadFrame(); err != nil {
								return
							}
						}
					}()
					waitContaining(t, srv.out, "disconnected: victim0", 3*timeout)
					return
				}
				// Meanwhile a bystander pair chats.
				calmA, calmB := joinLenient(t, srv, "calmA"), joinLenient(t, srv, "calmB")
				for i := range 5 {
					calmA.Write(fr("send_message", "1 calmB ping"+strconv.Itoa(i)))
					calmB.Expect(protocol.ForwardMessage, "1 calmA ping"+strconv.Itoa(i))
				}
				// The victims read throttled for 6 s, far past the time an
				// unpaced flood takes to overflow their queues, then drain.
				time.AfterFunc(6*time.Second, func() {
					for _, u := range unthrottle {
						u()
					}
				})
				var wg sync.WaitGroup
				for _, v := range victims {
					wg.Add(1)
					go func() {
						defer wg.Done()
						expectFlood(t, v, attackers, tc.frames, size)
					}()
				}
				wg.Wait()
				for _, line := range srv.out.remainingAll() {
					if strings.HasPrefix(line, "disconnected: victim") || strings.Contains(line, "non-existent user victim") {
						t.Errorf("server printed %q", line)
					}
				}
			})
		}
	}
}

// A victim that stops reading altogether is still cut off, after the stall
// limit, and its paced sender then goes on.
func TestAbuseFloodAtStoppedReader(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--send-queue", "1M", "--stall-timeout", "2s")
	sink := joinLenient(t, srv, "sink")
	sink.TCP().SetReadBuffer(4096)
	attacker := joinLenient(t, srv, "attacker")
	bob := joinLenient(t, srv, "bob")
	var burst []byte
	for i := range 100 {
		burst = append(burst, fr("send_message", "1 sink "+floodText(i, 64000))...)
	}
	burst = append(burst, fr("send_message", "1 bob after the flood")...)
	sendBurst(attacker, burst)
	start := time.Now()
	srv.out.skipTo(t, "disconnected: sink", 3*timeout)
	bob.Expect(protocol.ForwardMessage, "1 attacker after the flood")
	t.Logf("the attacker was paused %v in all", time.Since(start).Round(100*time.Millisecond))
	waitContaining(t, srv.errs, `reason="slow consumer"`, timeout)
}

// joinLenient joins a raw connection as name and waits for its join line,
// skipping the lines of others.
func joinLenient(t testing.TB, srv *server, name string) *chattest.Conn {
	t.Helper()
	rc := sendJoin(t, srv, name, name)
	srv.out.skipTo(t, "join: "+name, timeout)
	return rc
}

// waitContaining waits until a line of l contains s, wherever the cursor
// is.
func waitContaining(t testing.TB, l *lineLog, s string, d time.Duration) {
	t.Helper()
	l.waitAny(t, d, "a line containing "+quote(s), func(line string) bool { return strings.Contains(line, s) })
}

// TestAbuseFloodFigures measures the floods of docs/RELIABILITY.md against
// a server with its default settings (8 MiB send queues, 2 MiB pace mark):
// CHAT_FLOOD_FIGURES=1 go test -run AbuseFloodFigures -v ./test/e2e
// (CHAT_FLOOD_ATTACKERS=10,100 to choose the numbers of attackers). Each
// attacker sends 300 messages of 65,000 bytes in one burst to a victim
// reading at 1 MB/s (for 10 s, then as fast as it can); a bystander pair
// measures its round trips meanwhile.
func TestAbuseFloodFigures(t *testing.T) {
	if os.Getenv("CHAT_FLOOD_FIGURES") == "" {
		t.Skip("opt-in: CHAT_FLOOD_FIGURES=1")
	}
	counts := []int{1, 10}
	if s := os.Getenv("CHAT_FLOOD_ATTACKERS"); s != "" {
		counts = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		t.Run(fmt.Sprintf("%d attackers", n), func(t *testing.T) {
			const frames, size = 300, 65000
			srv := startServer(t, "--max-clients", strconv.Itoa(n+3), "--max-conns-per-ip", "0")
			victim := joinLenient(t, srv, "victim")
			unthrottle := throttle(victim, 1<<20)
			calmA, calmB := joinLenient(t, srv, "calmA"), joinLenient(t, srv, "calmB")
			var attackers []string
			var conns []*chattest.Conn
			for i := range n {
				name := "attacker" + strconv.Itoa(i)
				attackers, conns = append(attackers, name), append(conns, joinLenient(t, srv, name))
			}
			var burst []byte // the same for every attacker
			for j := range frames {
				burst = append(burst, fr("send_message", "1 victim "+floodText(j, size))...)
			}
			start := time.Now()
			for _, a := range conns {
				sendBurst(a, burst)
			}
			// Bystander round trips during the throttled phase.
			var rtts []time.Duration
			stop := time.Now().Add(10 * time.Second)
			go func() {
				time.Sleep(time.Until(stop))
				unthrottle()
			}()
			done := make(chan struct{})
			go func() {
				defer close(done)
				expectFlood(t, victim, attackers, frames, size)
			}()
			for i := 0; time.Now().Before(stop); i++ {
				t0 := time.Now()
				calmA.Write(fr("send_message", "1 calmB rtt"+strconv.Itoa(i)))
				calmB.Expect(protocol.ForwardMessage, "1 calmA rtt"+strconv.Itoa(i))
				rtts = append(rtts, time.Since(t0))
				time.Sleep(50 * time.Millisecond) // the bystanders' own pace
			}
			<-done
			slices.Sort(rtts)
			cut := 0
			for _, line := range srv.out.remainingAll() {
				if strings.HasPrefix(line, "disconnected: victim") {
					cut++
				}
			}
			t.Logf("%d attackers x %d x %d B = %.1f MB: all delivered in order in %v; victim cut off %d times; bystander round trips p50 %v p99 %v max %v (%d)",
				n, frames, size, float64(n*frames*size)/1e6, time.Since(start).Round(time.Second), cut,
				rtts[len(rtts)/2], rtts[len(rtts)*99/100], rtts[len(rtts)-1], len(rtts))
		})
	}
}
