package customer

import (
	"context"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/testkit"
)

// TestListNeverServesAStalePage: customer list pages are cached, yet
// every change is seen by the next list, whoever made it: this process,
// another process on the same database (a second service: its own
// cache), or an operator with SQL.
func TestListNeverServesAStalePage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		gdb := testkit.OpenDB(t, b, Name, Migrations)
		opts := Options{BcryptCost: bcrypt.MinCost}
		svc, other := New(gdb, newTokens(t), opts), New(gdb, newTokens(t), opts)
		c, err := svc.Register(ctx, Registration{Email: "ann@example.com", Password: "correct horse", FirstName: "Ann", LastName: "Smith"})
		must(t, err)
		list := func(s Service) (string, int64) {
			t.Helper()
			res, err := s.ListCustomers(ctx, Filter{})
			must(t, err)
			if len(res.Items) == 0 {
				t.Fatalf("empty list: %+v", res)
			}
			return res.Items[0].FirstName, res.Total
		}
		if name, total := list(svc); name != "Ann" || total != 1 {
			t.Fatalf("list: %s of %d", name, total)
		}
		list(svc) // from the cache now

		steps := []struct {
			name   string
			change func()
			want   string
		}{
			{"this process", func() {
				_, err := svc.UpdateCustomer(ctx, c.ID, CustomerUpdate{FirstName: ptr("Anna")})
				must(t, err)
			}, "Anna"},
			{"another process", func() {
				_, err := other.UpdateCustomer(ctx, c.ID, CustomerUpdate{FirstName: ptr("Annie")})
				must(t, err)
			}, "Annie"},
			{"by hand", func() { must(t, gdb.Exec(`UPDATE customers SET first_name = 'Anne'`).Error) }, "Anne"},
		}
		for _, s := range steps {
			s.change()
			for _, who := range []Service{svc, other} {
				if name, _ := list(who); name != s.want {
					t.Errorf("after a change by %s: %q, want %q", s.name, name, s.want)
				}
			}
		}
		_, err = other.Register(ctx, Registration{Email: "bob@example.com", Password: "correct horse", FirstName: "Bob", LastName: "Jones"})
		must(t, err)
		if _, total := list(svc); total != 2 {
			t.Errorf("after a registration elsewhere: total %d", total)
		}
	})
}

// TestRevokedKeyIsRefusedAtOnce: API key lookups are shared among
// concurrent requests, never cached: a key revoked by another process is
// refused by the very next request.
func TestRevokedKeyIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		gdb := testkit.OpenDB(t, b, Name, Migrations)
		opts := Options{BcryptCost: bcrypt.MinCost}
		svc, other := New(gdb, newTokens(t), opts), New(gdb, newTokens(t), opts)
		k, err := svc.CreateAPIKey(ctx, NewAPIKey{Name: "till", Role: auth.RoleManager})
		must(t, err)
		// Requests keep authenticating while the key is revoked.
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = svc.AuthenticateKey(ctx, k.Key)
				}
			})
		}
		p, err := svc.AuthenticateKey(ctx, k.Key)
		must(t, err)
		if p.Role != auth.RoleManager || p.Subject != k.ID {
			t.Errorf("principal %+v", p)
		}
		must(t, other.RevokeAPIKey(ctx, k.ID))
		if _, err := svc.AuthenticateKey(ctx, k.Key); !errs.IsKind(err, errs.Unauthorized) {
			t.Errorf("the revoked key: %v", err)
		}
		close(stop)
		wg.Wait()
	})
}
