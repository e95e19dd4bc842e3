package customer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/auth"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// fixture is one adapter of Service under test, with the token issuer it
// signs with and the clock its rate limits run on.
type fixture struct {
	svc    Service
	tokens *auth.Tokens
	clock  *testClock
}

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP. The same
// assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T) fixture {
			tokens, clock := newTokens(t), newTestClock()
			return fixture{svc: newLocal(t, b, tokens, clock), tokens: tokens, clock: clock}
		})
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T) fixture {
			tokens, clock := newTokens(t), newTestClock()
			local := newLocal(t, testkit.SQLite, tokens, clock)
			// The admin key may do everything the suite does; as an admin
			// (who is every role) it may also name the shopper's address.
			srv := serve(t, local, tokens, false)
			return fixture{svc: srv.client(srv.AdminKey), tokens: tokens, clock: clock}
		})
	})
}

func runSuite(t *testing.T, newFixture func(t *testing.T) fixture) {
	ctx := context.Background()
	reg := func(email string) Registration {
		return Registration{Email: email, Password: "correct horse", FirstName: "Ann", LastName: "Smith", Phone: "+1 514-555-0100"}
	}

	t.Run("register and login", func(t *testing.T) {
		f := newFixture(t)
		c, err := f.svc.Register(ctx, reg("  Ann@Example.COM "))
		must(t, err)
		if !strings.HasPrefix(c.ID, "cus_") || c.Email != "ann@example.com" || c.FirstName != "Ann" || c.Version != 1 || c.CreatedAt.IsZero() {
			t.Fatalf("registered %+v", c)
		}
		raw, _ := json.Marshal(c)
		if strings.Contains(string(raw), "password") || strings.Contains(string(raw), "$2a$") {
			t.Fatalf("customer carries its password: %s", raw)
		}
		got, err := f.svc.GetCustomer(ctx, c.ID)
		must(t, err)
		if got.Email != c.Email || got.Phone != "+1 514-555-0100" || !got.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("got %+v, want %+v", got, c)
		}
		s, err := f.svc.Login(ctx, Credentials{Email: " ANN@example.com", Password: "correct horse", ClientIP: "192.0.2.10"})
		must(t, err)
		if s.TokenType != "Bearer" || s.ExpiresIn != 3600 || s.CustomerID != c.ID || s.Token == "" {
			t.Fatalf("session %+v", s)
		}
		p, err := f.tokens.Verify(s.Token)
		must(t, err)
		if p.Role != auth.RoleCustomer || p.Subject != c.ID || p.Name != "ann@example.com" {
			t.Fatalf("token principal %+v", p)
		}
	})

	t.Run("duplicate email", func(t *testing.T) {
		f := newFixture(t)
		c, err := f.svc.Register(ctx, reg("dup@example.com"))
		must(t, err)
		_, err = f.svc.Register(ctx, reg(" DUP@example.com"))
		if !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("duplicate email: %v", err)
		}
		if strings.Contains(err.Error(), c.ID) {
			t.Fatalf("conflict reveals the account: %v", err)
		}
	})

	t.Run("wrong password and unknown email look the same", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.svc.Register(ctx, reg("bob@example.com"))
		must(t, err)
		_, wrong := f.svc.Login(ctx, Credentials{Email: "bob@example.com", Password: "wrong password"})
		_, unknown := f.svc.Login(ctx, Credentials{Email: "nobody@example.com", Password: "correct horse"})
		if !errs.IsKind(wrong, errs.Unauthorized) || !errs.IsKind(unknown, errs.Unauthorized) {
			t.Fatalf("wrong password: %v; unknown email: %v", wrong, unknown)
		}
		if wrong.Error() != unknown.Error() {
			t.Fatalf("messages differ: %q vs %q", wrong, unknown)
		}
		if _, err := f.svc.Login(ctx, Credentials{Email: "bob@example.com"}); !hasField(err, "password") {
			t.Fatalf("missing password: %v", err)
		}
	})

	t.Run("registration is validated field by field", func(t *testing.T) {
		f := newFixture(t)
		long := strings.Repeat("x", 101)
		cases := []struct {
			name  string
			edit  func(*Registration)
			field string
		}{
			{"not an email", func(r *Registration) { r.Email = "not-an-email" }, "email"},
			{"no dot in domain", func(r *Registration) { r.Email = "a@b" }, "email"},
			{"display name", func(r *Registration) { r.Email = "Ann <ann@example.com>" }, "email"},
			{"sql in email", func(r *Registration) { r.Email = "x' OR 1=1 --@example.com" }, "email"},
			{"short password", func(r *Registration) { r.Password = "short" }, "password"},
			{"password over 72 bytes", func(r *Registration) { r.Password = strings.Repeat("p", 73) }, "password"},
			{"72 bytes counted in bytes", func(r *Registration) { r.Password = strings.Repeat("é", 40) }, "password"},
			{"empty first name", func(r *Registration) { r.FirstName = "  " }, "first_name"},
			{"long last name", func(r *Registration) { r.LastName = long }, "last_name"},
			{"control character", func(r *Registration) { r.FirstName = "Ann\nAdmin: yes" }, "first_name"},
			{"bad phone", func(r *Registration) { r.Phone = "call me" }, "phone"},
		}
		for _, c := range cases {
			in := reg(testkit.ID("v") + "@example.com")
			c.edit(&in)
			_, err := f.svc.Register(ctx, in)
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, c.field) {
				t.Errorf("%s: got %v (fields %v), want invalid %s", c.name, err, errs.Fields(err), c.field)
			}
		}
		res, err := f.svc.ListCustomers(ctx, Filter{})
		must(t, err)
		if res.Total != 0 {
			t.Fatalf("failed registrations wrote %d customers", res.Total)
		}
		// Names with apostrophes are names, not attacks: stored verbatim.
		in := reg("obrien@example.com")
		in.LastName = "O'Brien'); DROP TABLE customers;--"
		c, err := f.svc.Register(ctx, in)
		must(t, err)
		got, err := f.svc.GetCustomer(ctx, c.ID)
		must(t, err)
		if got.LastName != in.LastName {
			t.Fatalf("last name %q", got.LastName)
		}
	})

	t.Run("customers: get, update, list", func(t *testing.T) {
		f := newFixture(t)
		ann, err := f.svc.Register(ctx, reg("ann@example.com"))
		must(t, err)
		bob := reg("bob@example.com")
		bob.FirstName, bob.LastName = "Bob", "Smithers"
		_, err = f.svc.Register(ctx, bob)
		must(t, err)
		cy := reg("cy@example.com")
		cy.FirstName, cy.LastName, cy.Phone = "Cy", "Jones", "514 555 0199"
		_, err = f.svc.Register(ctx, cy)
		must(t, err)

		if _, err := f.svc.GetCustomer(ctx, "cus_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("get unknown: %v", err)
		}
		up, err := f.svc.UpdateCustomer(ctx, ann.ID, CustomerUpdate{FirstName: ptr(" Anne "), Version: ptr(1)})
		must(t, err)
		if up.FirstName != "Anne" || up.LastName != "Smith" || up.Version != 2 || up.Email != "ann@example.com" {
			t.Fatalf("partial update: %+v", up)
		}
		if _, err := f.svc.UpdateCustomer(ctx, ann.ID, CustomerUpdate{FirstName: ptr("Stale"), Version: ptr(1)}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("stale version: %v", err)
		}
		if _, err := f.svc.UpdateCustomer(ctx, ann.ID, CustomerUpdate{Email: ptr("BOB@example.com")}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("email taken: %v", err)
		}
		if _, err := f.svc.UpdateCustomer(ctx, ann.ID, CustomerUpdate{Email: ptr("nope")}); !hasField(err, "email") {
			t.Fatalf("bad email: %v", err)
		}
		if _, err := f.svc.UpdateCustomer(ctx, ann.ID, CustomerUpdate{Phone: ptr("12")}); !hasField(err, "phone") {
			t.Fatalf("bad phone: %v", err)
		}
		if _, err := f.svc.UpdateCustomer(ctx, "cus_missing", CustomerUpdate{FirstName: ptr("x")}); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("update unknown: %v", err)
		}
		_, err = f.svc.UpdateCustomer(ctx, ann.ID, CustomerUpdate{Email: ptr("Anne@New.example")})
		must(t, err)
		s, err := f.svc.Login(ctx, Credentials{Email: "anne@new.example", Password: "correct horse"})
		must(t, err)
		if s.CustomerID != ann.ID {
			t.Fatalf("login after email change: %+v", s)
		}

		all, err := f.svc.ListCustomers(ctx, Filter{})
		must(t, err)
		if all.Total != 3 || len(all.Items) != 3 || all.Items[0].LastName != "Jones" || all.Items[1].LastName != "Smith" {
			t.Fatalf("list ordered by name: %+v", all)
		}
		cases := []struct {
			name  string
			f     Filter
			total int64
			items int
		}{
			{"last name, any case", Filter{Search: "SMITH"}, 2, 2},
			{"full name", Filter{Search: "anne smith"}, 1, 1},
			{"email", Filter{Search: "new.example"}, 1, 1},
			{"phone", Filter{Search: "555 0199"}, 1, 1},
			{"percent is literal", Filter{Search: "%"}, 0, 0},
			{"underscore is literal", Filter{Search: "_"}, 0, 0},
			{"quote is literal", Filter{Search: "x' OR '1'='1"}, 0, 0},
			{"second page", Filter{Page: page.Request{Page: 2, PerPage: 2}}, 3, 1},
		}
		for _, c := range cases {
			res, err := f.svc.ListCustomers(ctx, c.f)
			if err != nil || res.Total != c.total || len(res.Items) != c.items {
				t.Errorf("%s: total %d items %d err %v, want %d and %d", c.name, res.Total, len(res.Items), err, c.total, c.items)
			}
		}
	})

	t.Run("addresses keep exactly one default", func(t *testing.T) {
		f := newFixture(t)
		c, err := f.svc.Register(ctx, reg("home@example.com"))
		must(t, err)
		addr := func(label string, def bool) NewAddress {
			return NewAddress{Label: label, Line1: "1 Rue Sainte-Catherine", City: "Montréal", Province: "qc", PostalCode: " h2x-1y4", IsDefault: def}
		}
		a1, err := f.svc.AddAddress(ctx, c.ID, addr("home", false))
		must(t, err)
		if !a1.IsDefault || a1.PostalCode != "H2X 1Y4" || a1.Province != "QC" || a1.Country != "CA" || a1.CustomerID != c.ID {
			t.Fatalf("first address: %+v", a1)
		}
		a2, err := f.svc.AddAddress(ctx, c.ID, addr("work", false))
		must(t, err)
		if a2.IsDefault {
			t.Fatal("second address took the default")
		}
		a3, err := f.svc.AddAddress(ctx, c.ID, addr("cottage", true))
		must(t, err)
		wantDefault := func(id string, n int) {
			t.Helper()
			as, err := f.svc.ListAddresses(ctx, c.ID)
			must(t, err)
			defaults := 0
			for _, a := range as {
				if a.IsDefault {
					defaults++
				}
			}
			if len(as) != n || (n > 0 && (defaults != 1 || as[0].ID != id || !as[0].IsDefault)) || (n == 0 && defaults != 0) {
				t.Fatalf("want %d addresses with default %s first: %+v", n, id, as)
			}
		}
		wantDefault(a3.ID, 3)

		up, err := f.svc.UpdateAddress(ctx, c.ID, a2.ID, AddressUpdate{IsDefault: ptr(true)})
		must(t, err)
		if !up.IsDefault || up.Label != "work" {
			t.Fatalf("update to default: %+v", up)
		}
		wantDefault(a2.ID, 3)
		if _, err := f.svc.UpdateAddress(ctx, c.ID, a2.ID, AddressUpdate{IsDefault: ptr(false)}); !hasField(err, "is_default") {
			t.Fatalf("unsetting the default: %v", err)
		}
		up, err = f.svc.UpdateAddress(ctx, c.ID, a1.ID, AddressUpdate{City: ptr(" Laval "), PostalCode: ptr("h7n 0a1")})
		must(t, err)
		if up.City != "Laval" || up.PostalCode != "H7N 0A1" || up.Line1 != a1.Line1 || up.IsDefault {
			t.Fatalf("partial address update: %+v", up)
		}
		if _, err := f.svc.UpdateAddress(ctx, c.ID, a1.ID, AddressUpdate{PostalCode: ptr("90210")}); !hasField(err, "postal_code") {
			t.Fatalf("bad postal code on update: %v", err)
		}
		wantDefault(a2.ID, 3)

		must(t, f.svc.DeleteAddress(ctx, c.ID, a2.ID)) // the default: the oldest left takes over
		wantDefault(a1.ID, 2)
		must(t, f.svc.DeleteAddress(ctx, c.ID, a3.ID)) // not the default: nothing moves
		wantDefault(a1.ID, 1)
		must(t, f.svc.DeleteAddress(ctx, c.ID, a1.ID))
		wantDefault("", 0)
		if err := f.svc.DeleteAddress(ctx, c.ID, a1.ID); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		again, err := f.svc.AddAddress(ctx, c.ID, addr("again", false))
		must(t, err)
		if !again.IsDefault {
			t.Fatal("first address after emptying the list is not the default")
		}
	})

	t.Run("concurrent address changes keep one default", func(t *testing.T) {
		f := newFixture(t)
		c, err := f.svc.Register(ctx, reg("busy@example.com"))
		must(t, err)
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				_, err := f.svc.AddAddress(ctx, c.ID, NewAddress{Line1: fmt.Sprintf("%d Main St", i), City: "Halifax",
					Province: "NS", PostalCode: "B3H 1A1", IsDefault: i%2 == 1})
				errc <- err
			})
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			must(t, err)
		}
		as, err := f.svc.ListAddresses(ctx, c.ID)
		must(t, err)
		defaults := 0
		for _, a := range as {
			if a.IsDefault {
				defaults++
			}
		}
		if len(as) != 8 || defaults != 1 {
			t.Fatalf("%d addresses, %d defaults", len(as), defaults)
		}
	})

	t.Run("addresses are validated and owned", func(t *testing.T) {
		f := newFixture(t)
		c, err := f.svc.Register(ctx, reg("owner@example.com"))
		must(t, err)
		other, err := f.svc.Register(ctx, reg("other@example.com"))
		must(t, err)
		good := NewAddress{Line1: "100 Queen St W", City: "Toronto", Province: "ON", PostalCode: "M5H 2N2"}
		cases := []struct {
			name  string
			edit  func(*NewAddress)
			field string
		}{
			{"unknown province", func(a *NewAddress) { a.Province = "XX" }, "province"},
			{"US zip", func(a *NewAddress) { a.PostalCode = "90210" }, "postal_code"},
			{"letter never used", func(a *NewAddress) { a.PostalCode = "D1A 1A1" }, "postal_code"},
			{"other country", func(a *NewAddress) { a.Country = "US" }, "country"},
			{"no street", func(a *NewAddress) { a.Line1 = " " }, "line1"},
			{"no city", func(a *NewAddress) { a.City = "" }, "city"},
		}
		for _, tc := range cases {
			in := good
			tc.edit(&in)
			_, err := f.svc.AddAddress(ctx, c.ID, in)
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, tc.field) {
				t.Errorf("%s: got %v (fields %v), want invalid %s", tc.name, err, errs.Fields(err), tc.field)
			}
		}
		if as, _ := f.svc.ListAddresses(ctx, c.ID); len(as) != 0 {
			t.Fatalf("failed adds wrote %d addresses", len(as))
		}
		a, err := f.svc.AddAddress(ctx, c.ID, good)
		must(t, err)
		// Another customer's id does not reach this address.
		if _, err := f.svc.UpdateAddress(ctx, other.ID, a.ID, AddressUpdate{City: ptr("Elsewhere")}); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("update through another customer: %v", err)
		}
		if err := f.svc.DeleteAddress(ctx, other.ID, a.ID); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("delete through another customer: %v", err)
		}
		if _, err := f.svc.ListAddresses(ctx, "cus_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("list of unknown customer: %v", err)
		}
		if _, err := f.svc.AddAddress(ctx, "cus_missing", good); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("add to unknown customer: %v", err)
		}
		for i := 1; i < MaxAddresses; i++ {
			_, err := f.svc.AddAddress(ctx, c.ID, good)
			must(t, err)
		}
		if _, err := f.svc.AddAddress(ctx, c.ID, good); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("address %d: %v", MaxAddresses+1, err)
		}
	})

	t.Run("api keys: create, authenticate, revoke", func(t *testing.T) {
		f := newFixture(t)
		for _, bad := range []struct {
			in    NewAPIKey
			field string
		}{
			{NewAPIKey{Name: "x", Role: "superuser"}, "role"},
			{NewAPIKey{Name: "x", Role: auth.RoleCustomer}, "role"},
			{NewAPIKey{Name: " ", Role: auth.RoleCashier}, "name"},
		} {
			if _, err := f.svc.CreateAPIKey(ctx, bad.in); !errs.IsKind(err, errs.Invalid) || !hasField(err, bad.field) {
				t.Errorf("create %+v: %v, want invalid %s", bad.in, err, bad.field)
			}
		}
		k, err := f.svc.CreateAPIKey(ctx, NewAPIKey{Name: "Till 3", Role: auth.RoleCashier, LocationID: "loc_mtl"})
		must(t, err)
		if !auth.LooksLikeKey(k.Key) || !strings.HasPrefix(k.ID, "key_") || k.Role != auth.RoleCashier || k.LocationID != "loc_mtl" {
			t.Fatalf("created %+v", k)
		}
		p, err := f.svc.AuthenticateKey(ctx, k.Key)
		must(t, err)
		want := auth.Principal{Role: auth.RoleCashier, Subject: k.ID, Name: "Till 3", LocationID: "loc_mtl"}
		if p != want {
			t.Fatalf("principal %+v, want %+v", p, want)
		}
		list, err := f.svc.ListAPIKeys(ctx, page.Request{})
		must(t, err)
		raw, _ := json.Marshal(list)
		if list.Total != 1 || list.Items[0].ID != k.ID || strings.Contains(string(raw), k.Key) || strings.Contains(string(raw), auth.HashKey(k.Key)) {
			t.Fatalf("list: %s", raw)
		}
		if list.Items[0].LastUsedAt == nil || !list.Items[0].LastUsedAt.Equal(f.clock.Now()) {
			t.Fatalf("last use not recorded: %+v", list.Items[0])
		}

		must(t, f.svc.RevokeAPIKey(ctx, k.ID))
		if _, err := f.svc.AuthenticateKey(ctx, k.Key); !errs.IsKind(err, errs.Unauthorized) {
			t.Fatalf("revoked key: %v", err)
		}
		must(t, f.svc.RevokeAPIKey(ctx, k.ID)) // revoking twice is fine
		if err := f.svc.RevokeAPIKey(ctx, "key_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}
		list, err = f.svc.ListAPIKeys(ctx, page.Request{})
		must(t, err)
		if list.Items[0].RevokedAt == nil {
			t.Fatalf("revocation not shown: %+v", list.Items[0])
		}
		for _, key := range []string{"garbage", auth.NewAPIKey(), ""} {
			if _, err := f.svc.AuthenticateKey(ctx, key); !errs.IsKind(err, errs.Unauthorized) {
				t.Errorf("key %q: %v", key, err)
			}
		}
	})

	t.Run("login failures are limited per account", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.svc.Register(ctx, reg("target@example.com"))
		must(t, err)
		_, err = f.svc.Register(ctx, reg("bystander@example.com"))
		must(t, err)
		login := func(email, password, ip string) error {
			_, err := f.svc.Login(ctx, Credentials{Email: email, Password: password, ClientIP: ip})
			return err
		}
		// Each guess from its own address: only the account limit applies.
		for i := range 5 {
			if err := login("target@example.com", "guess", fmt.Sprintf("192.0.2.%d", i)); !errs.IsKind(err, errs.Unauthorized) {
				t.Fatalf("guess %d: %v", i+1, err)
			}
		}
		// Now even the right password is not checked.
		if err := login("Target@example.com", "correct horse", "198.51.100.1"); !errs.IsKind(err, errs.TooManyRequests) {
			t.Fatalf("6th attempt: %v", err)
		}
		must(t, login("bystander@example.com", "correct horse", "198.51.100.1"))
		// Unknown accounts are limited alike, so a 429 tells nothing.
		for range 5 {
			_ = login("ghost@example.com", "guess", "")
		}
		if err := login("ghost@example.com", "guess", ""); !errs.IsKind(err, errs.TooManyRequests) {
			t.Fatalf("unknown account: %v", err)
		}

		f.clock.Advance(15*time.Minute + time.Second)
		must(t, login("target@example.com", "correct horse", "198.51.100.1"))

		// A success clears the account: 4 + 4 failures around it never
		// reach the limit of 5.
		for range 4 {
			_ = login("target@example.com", "guess", "")
		}
		must(t, login("target@example.com", "correct horse", ""))
		for range 4 {
			_ = login("target@example.com", "guess", "")
		}
		must(t, login("target@example.com", "correct horse", ""))
	})

	t.Run("login failures are limited per address", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.svc.Register(ctx, reg("victim@example.com"))
		must(t, err)
		const attacker = "203.0.113.7"
		for i := range 19 {
			_, err := f.svc.Login(ctx, Credentials{Email: fmt.Sprintf("user%d@example.com", i), Password: "guess", ClientIP: attacker})
			if !errs.IsKind(err, errs.Unauthorized) {
				t.Fatalf("guess %d: %v", i+1, err)
			}
		}
		// Successes do not use up the address's budget (an office behind
		// one NAT logs in all day): two in a row at 19 failures.
		for range 2 {
			_, err := f.svc.Login(ctx, Credentials{Email: "victim@example.com", Password: "correct horse", ClientIP: attacker})
			must(t, err)
		}
		_, err = f.svc.Login(ctx, Credentials{Email: "user20@example.com", Password: "guess", ClientIP: attacker})
		if !errs.IsKind(err, errs.Unauthorized) {
			t.Fatalf("20th failure: %v", err)
		}
		_, err = f.svc.Login(ctx, Credentials{Email: "victim@example.com", Password: "correct horse", ClientIP: attacker})
		if !errs.IsKind(err, errs.TooManyRequests) {
			t.Fatalf("after 20 failures from one address: %v", err)
		}
		_, err = f.svc.Login(ctx, Credentials{Email: "victim@example.com", Password: "correct horse", ClientIP: "198.51.100.2"})
		must(t, err)
		f.clock.Advance(15*time.Minute + time.Second)
		_, err = f.svc.Login(ctx, Credentials{Email: "victim@example.com", Password: "correct horse", ClientIP: attacker})
		must(t, err)
	})
}
