package readcache

import (
	"context"
	"testing"
	"time"
)

// TestVersionedServesOnlyItsVersion: an answer is served at the version it
// was stored under and no other, a new version empties the cache, and
// answers are copies.
func TestVersionedServesOnlyItsVersion(t *testing.T) {
	t.Parallel()
	c := NewVersioned[string, []int](func(v []int) []int { return append([]int(nil), v...) })
	in := []int{1, 2}
	c.Put(7, "a", in)
	in[0] = 99 // the caller's slice is not the cache's
	got, ok := c.Get(7, "a")
	if !ok || got[0] != 1 {
		t.Fatalf("at its version: %v %v", got, ok)
	}
	got[1] = 42 // nor is the answer
	if again, _ := c.Get(7, "a"); again[1] != 2 {
		t.Fatalf("an answer changed the cache: %v", again)
	}
	if _, ok := c.Get(8, "a"); ok {
		t.Fatal("served at another version")
	}
	c.Put(8, "b", []int{3})
	if _, ok := c.Get(7, "a"); ok {
		t.Fatal("an older version's answer survived a newer one")
	}
	for i := range MaxVersionedEntries + 1 {
		c.Put(8, string(rune('c'+i)), []int{i})
	}
	if n := len(c.entries); n > MaxVersionedEntries {
		t.Fatalf("%d entries kept, bound %d", n, MaxVersionedEntries)
	}
}

// TestThroughReadsOnlyWhenTheVersionMoved: at an unchanged version the
// second caller is served from the cache; once the version moves, the
// next caller reads again.
func TestThroughReadsOnlyWhenTheVersionMoved(t *testing.T) {
	t.Parallel()
	var version, reads int64 = 1, 0
	versions := NewCoalescer(time.Second, func(context.Context, struct{}) (int64, error) { return version, nil })
	c := NewVersioned[string, int64](func(v int64) int64 { return v })
	read := func(context.Context) (int64, error) { reads++; return version * 10, nil }
	for range 2 {
		if v, err := c.Through(context.Background(), versions, "k", read); err != nil || v != 10 {
			t.Fatalf("got %d, %v", v, err)
		}
	}
	if reads != 1 {
		t.Fatalf("%d reads at one version, want 1", reads)
	}
	version = 2
	if v, _ := c.Through(context.Background(), versions, "k", read); v != 20 || reads != 2 {
		t.Fatalf("after the version moved: %d after %d reads", v, reads)
	}
}
