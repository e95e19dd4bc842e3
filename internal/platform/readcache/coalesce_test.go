package readcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescerNeverAnswersWithAnOlderRead: many callers, one value that
// keeps moving; a caller that saw the value at n before asking must get a
// read of at least n, while the reads are shared.
func TestCoalescerNeverAnswersWithAnOlderRead(t *testing.T) {
	t.Parallel()
	var (
		value atomic.Int64
		reads atomic.Int64
	)
	c := NewCoalescer(time.Second, func(context.Context, struct{}) (int64, error) {
		reads.Add(1)
		v := value.Load()
		time.Sleep(200 * time.Microsecond) // a round trip, during which callers pile up
		return v, nil
	})
	const callers, rounds = 32, 200
	var wg sync.WaitGroup
	var calls atomic.Int64
	for range callers {
		wg.Go(func() {
			for range rounds {
				committed := value.Add(1) // a change committed before the call
				got, err := c.Get(context.Background(), struct{}{})
				calls.Add(1)
				if err != nil || got < committed {
					t.Errorf("got %d (%v) after %d was committed", got, err, committed)
					return
				}
			}
		})
	}
	wg.Wait()
	if r, n := reads.Load(), calls.Load(); r >= n {
		t.Errorf("%d reads for %d calls: nothing was shared", r, n)
	}
	// The last sender forgets the key just after answering.
	deadline := time.Now().Add(time.Second)
	for {
		c.mu.Lock()
		n := len(c.keys)
		c.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle keys kept: %d", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescerCallerLeavesOnItsContext: a caller whose request ends
// stops waiting; the read goes on for the others.
func TestCoalescerCallerLeavesOnItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	c := NewCoalescer(5*time.Second, func(context.Context, string) (string, error) {
		<-release
		return "v", nil
	})
	first := make(chan string)
	go func() {
		v, _ := c.Get(context.Background(), "k") // sends the read and waits for it
		first <- v
	}()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the caller whose context ended got %v", err)
	}
	close(release)
	if v := <-first; v != "v" {
		t.Fatalf("the first caller got %q", v)
	}
}
