package cluster

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gochat/chat/internal/protocol"
	"github.com/gochat/chat/internal/testbin"
)

// fileSize is the file the CI run sends across nodes: several times the
// 64 MiB bound on each node's memory growth, so that the bound means
// something. CHAT_CLUSTER_FILE_MIB makes it larger (docs/CLUSTER.md has
// the 1 GiB run).
func fileSize() int64 { return int64(testbin.EnvInt("CHAT_CLUSTER_FILE_MIB", 256)) << 20 }

// A large file crosses nodes with bounded memory on every node,
// byte-identical to a plain and to a chunked recipient, and its slow plain
// recipient holds nobody: the file reaches his node whole before his copy
// starts (issue 19: a contract recipient's file is held whole first). The nodes run without the race detector, which would
// inflate their memory several times (the other cluster tests run with
// it).
func TestFileAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startClusterOf(t, gochatdPlainBin, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	alice := join(t, n1, "alice")
	bob := join(t, n2, "bob")
	carol := joinChunked(t, n3, "carol")
	alice.waitList(usersList("alice", "bob", "carol"))

	size := fileSize()
	const rate = 32 << 20 // bob reads at 32 MiB/s
	seed := rand.Uint64()
	before := make([]int, len(nodes))
	for i, n := range nodes {
		before[i] = n.RSSKiB(t)
	}
	peak := make([]int, len(nodes))
	stopSampling := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			for i, n := range nodes {
				peak[i] = max(peak[i], n.RSSKiB(t))
			}
		}
	})

	start := time.Now()
	sent := make(chan time.Duration, 1)
	go func() {
		alice.NC.SetWriteDeadline(time.Time{})
		alice.NC.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "carol"}, "big.bin", size))
		io.Copy(alice.NC, io.LimitReader(newPattern(seed), size))
		sent <- time.Since(start)
	}()
	var wg sync.WaitGroup
	sums := make([][32]byte, 2)
	var bobHead time.Time
	wg.Go(func() { sums[0], bobHead = readPlainFile(t, bob, rate, "1 alice big.bin ", size) })
	wg.Go(func() { sums[1] = sha256.Sum256(receiveFile(t, carol)) })
	wg.Wait()
	took := time.Since(start)
	close(stopSampling)
	sampling.Wait()

	h := sha256.New()
	io.Copy(h, io.LimitReader(newPattern(seed), size))
	var want [32]byte
	copy(want[:], h.Sum(nil))
	if sums[0] != want || sums[1] != want {
		t.Fatalf("the file arrived damaged (plain %v, chunked %v)", sums[0] == want, sums[1] == want)
	}
	senderDone := <-sent
	// Bob's forward_file starts only once his node holds the whole file,
	// so the sender, not paced by his 32 MiB/s, was done about then (its
	// goroutine notes the time after its last write returns, which a
	// loaded machine may delay a little); paced, it would end seconds
	// after bob's file began.
	if bobAfter := bobHead.Sub(start); senderDone > bobAfter+time.Second {
		t.Errorf("the sender finished %v after the start, bob's file began at %v: bob's pace held the sender", senderDone, bobAfter)
	}
	for i, n := range nodes {
		growth := (peak[i] - before[i]) >> 10
		t.Logf("%s: RSS %d MiB before, peak growth %d MiB", n.name, before[i]>>10, growth)
		if growth > 64 {
			t.Errorf("%s grew by %d MiB for a %d MiB file, more than 64", n.name, growth, size>>20)
		}
	}
	t.Logf("%d MiB in %v (bob reading at %d MiB/s)", size>>20, took.Round(time.Millisecond), rate>>20)
}

// readPlainFile reads a forward_file frame, whose payload must start with
// head and hold size bytes of content, at about rate bytes per second, and
// returns the content's SHA-256 and when the frame's header came.
func readPlainFile(t *testing.T, c *conn, rate int, head string, size int64) (sum256 [32]byte, headAt time.Time) {
	c.NC.SetReadDeadline(time.Time{})
	h, err := c.R.ReadHeader()
	headAt = time.Now()
	if err != nil || h.Type != protocol.ForwardFile || h.Length != int64(len(head))+size {
		t.Errorf("%s: got %s of %d bytes, %v", c.Name, h.Name, h.Length, err)
		return [32]byte{}, headAt
	}
	got := make([]byte, len(head))
	if _, err := io.ReadFull(c.R, got); err != nil || string(got) != head {
		t.Errorf("%s: head %q, %v", c.Name, got, err)
		return [32]byte{}, headAt
	}
	sum := sha256.New()
	buf := make([]byte, 256<<10)
	start := time.Now()
	var n int64
	for n < size {
		k, err := c.R.Read(buf[:min(int64(len(buf)), size-n)])
		sum.Write(buf[:k])
		n += int64(k)
		if err != nil {
			t.Errorf("%s: after %d bytes: %v", c.Name, n, err)
			return [32]byte{}, headAt
		}
		// Keep to the rate: the reader's speed, not a wait for an event.
		time.Sleep(time.Until(start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))))
	}
	copy(sum256[:], sum.Sum(nil))
	return sum256, headAt
}

// pattern is a deterministic stream of bytes.
type pattern struct{ r *rand.ChaCha8 }

func newPattern(seed uint64) io.Reader {
	var s [32]byte
	for i := range 4 {
		s[i*8] = byte(seed >> (8 * i))
	}
	return pattern{rand.NewChaCha8(s)}
}

func (p pattern) Read(b []byte) (int, error) { return p.r.Read(b) }

// A sender dropping mid-file: a plain recipient on another node, sent
// nothing of the file until it is whole, gets nothing and stays (it was
// once cut off, its frame half-sent); a chunked one gets file_abort and
// stays.
func TestFileSenderDropsAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	alice := join(t, nodes[0], "alice")
	bob := join(t, nodes[1], "bob")
	carol := joinChunked(t, nodes[2], "carol")
	alice.waitList(usersList("alice", "bob", "carol"))
	alice.Write(protocol.AppendFileHead(nil, protocol.SendFile, []string{"bob", "carol"}, "f.bin", 64<<20))
	alice.Write(make([]byte, 4<<20))
	alice.NC.(*net.TCPConn).SetLinger(0)
	alice.NC.Close()
	nodes[0].Out.WaitLine(t, "disconnected: alice", timeout)
	for {
		h, p, err := carol.ReadFrame()
		if err != nil {
			t.Fatalf("carol: %v", err)
		}
		if h.Type == protocol.FileAbort {
			break
		}
		if h.Type != protocol.FileBegin && h.Type != protocol.FileChunk {
			t.Fatalf("carol got %s %q", h.Name, p)
		}
	}
	carol.Send("still here", "carol", "bob")
	carol.Expect(protocol.ForwardMessage, "1 carol still here")
	bob.Expect(protocol.ForwardMessage, "1 carol still here")
}
