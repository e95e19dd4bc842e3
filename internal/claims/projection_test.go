package claims

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestProjectorConcurrentConsumers: several consumers of the group (the
// claims context in several processes) apply the events of the same claims
// at once and in any order, each event possibly twice. The rows end equal
// to the replay of each claim, and each event is recorded once.
func TestProjectorConcurrentConsumers(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		t.Parallel()
		ctx := context.Background()
		gdb := openReadDB(t, b)
		var envs []events.Envelope
		want := map[string]Claim{}
		for i := 0; i < 8; i++ {
			id := fmt.Sprintf("clm_conc%d", i)
			evs := lifecycleEvents(id)
			c, err := replay(evs)
			must(t, err)
			want[id] = c
			for _, e := range evs {
				env, err := envelopeOf(e)
				must(t, err)
				envs = append(envs, env, env) // every event delivered twice
			}
		}
		rand.Shuffle(len(envs), func(i, j int) { envs[i], envs[j] = envs[j], envs[i] })
		const consumers = 4
		work := make(chan events.Envelope)
		var wg sync.WaitGroup
		for w := 0; w < consumers; w++ {
			p := NewProjector(gdb) // each consumer its own projector, as in its own process
			wg.Add(1)
			go func() {
				defer wg.Done()
				for env := range work {
					// The bus retries a failed handler; so does this loop.
					var err error
					for attempt := 0; attempt < 20; attempt++ {
						if err = p.Handle(ctx, env); err == nil {
							break
						}
					}
					if err != nil {
						t.Errorf("handle %s: %v", env.EventID, err)
					}
				}
			}()
		}
		for _, env := range envs {
			work <- env
		}
		close(work)
		wg.Wait()
		m := &readModel{db: gdb}
		for id, w := range want {
			got, err := m.get(ctx, id)
			must(t, err)
			if !sameClaim(&got, &w) {
				t.Errorf("claim %s:\n got %s\nwant %s", id, asJSON(got), asJSON(w))
			}
		}
		if n := len(processed(t, gdb)); n != len(envs)/2 {
			t.Fatalf("inbox holds %d events, want %d", n, len(envs)/2)
		}
	})
}
