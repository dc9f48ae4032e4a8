package server

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAdmissionWakesOnlyTheNext checks that a decided join wakes the join
// just after it, and nobody else: each of n waiters wakes once. Before,
// every waiter waited on the first of the line and woke at each decision,
// about n*n/2 wake-ups (issue 21: 12 % of a node's CPU in a storm).
func TestAdmissionWakesOnlyTheNext(t *testing.T) {
	const n = 200
	a := newAdmission(time.Hour)
	var woke atomic.Int64
	blocked := make(chan struct{}, 4*n)
	a.testHookBlock = func() {
		select {
		case blocked <- struct{}{}:
		default: // more blocks than the first n-1 only count as wake-ups
		}
	}
	a.testHookWoke = func() { woke.Add(1) }
	now := time.Now()
	tickets := make([]*ticket, n)
	for i := range tickets {
		tickets[i] = a.add(now)
	}
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() {
			a.wait(tickets[i], nil)
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			a.release(tickets[i])
		})
	}
	// Every waiter blocks on the one before it before the first is
	// decided; then the line moves one by one.
	deadline := time.After(10 * time.Second)
	for range n - 1 {
		select {
		case <-blocked:
		case <-deadline:
			t.Fatal("the waiters did not all block")
		}
	}
	a.release(tickets[0])
	wg.Wait()
	for k, i := range order {
		if i != k+1 {
			t.Fatalf("admitted in the order %v, want accept order", order[:k+1])
		}
	}
	if got := woke.Load(); got != n-1 {
		t.Errorf("%d wake-ups for %d waiters, want one each", got, n-1)
	}
}
