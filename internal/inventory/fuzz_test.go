package inventory

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzReservationInput feeds arbitrary bodies to POST
// /inventory/reservations through the whole HTTP stack. Whatever the body,
// the answer is never a 5xx, an error is problem+json, a success is a
// reservation, and the stock invariants hold afterwards.
//
// Bodies may name the fixture's products and locations as $P1, $P2, $L1,
// $L2: the ids are made fresh for every run, the placeholders keep the
// corpus meaningful from one run to the next.
func FuzzReservationInput(f *testing.F) {
	e := newHTTPEnv(f)
	p2 := e.product(f, "FUZZ-2", 0)
	l2 := e.location(f, "FUZZ")
	e.receive(f, e.prod, e.loc, 1000)
	e.receive(f, p2, l2, 3)
	ids := strings.NewReplacer("$P1", e.prod, "$P2", p2, "$L1", e.loc, "$L2", l2)

	for _, seed := range []string{
		`{"reservation_id":"f1","items":[{"product_id":"$P1","location_id":"$L1","quantity":1}]}`,
		`{"reservation_id":"f1","items":[{"product_id":"$P1","location_id":"$L1","quantity":2}]}`,
		`{"reservation_id":"f2","items":[{"product_id":"$P1","location_id":"$L1","quantity":5},{"product_id":"$P2","location_id":"$L2","quantity":3}],"ttl_seconds":60}`,
		`{"reservation_id":"f3","items":[{"product_id":"$P2","location_id":"$L2","quantity":4}]}`,
		`{"reservation_id":"f4","items":[{"product_id":"$P2","location_id":"$L1","quantity":1}]}`,
		`{"reservation_id":"f5","items":[{"product_id":"$P1","location_id":"$L1","quantity":1},{"product_id":"$P1","location_id":"$L1","quantity":1}]}`,
		`{"reservation_id":"f6","items":[{"product_id":"$P1","location_id":"$L1","quantity":-1}]}`,
		`{"reservation_id":"f7","items":[{"product_id":"$P1","location_id":"$L1","quantity":9223372036854775807}]}`,
		`{"reservation_id":"f8","items":[{"product_id":"$P1","location_id":"$L1","quantity":1e400}]}`,
		`{"reservation_id":"f9","items":[{"product_id":"x' OR 1=1 --","location_id":"$L1","quantity":1}]}`,
		`{"reservation_id":"","items":[]}`,
		`{"reservation_id":"f10","items":null,"ttl_seconds":-5}`,
		`{"reservation_id":"f11","items":[{"product_id":"$P1","location_id":"$L1","quantity":1}],"extra":{}}`,
		`{"reservation_id":"\u0000","items":[{}]}`,
		`{"reservation_id":"f1"`,
		`[]`, `null`, `"x"`, `{}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = []byte(ids.Replace(string(body)))
		r := e.do(t, http.MethodPost, "/inventory/reservations", e.h.Keys.Service, body)
		switch {
		case r.status >= 500:
			t.Fatalf("%d for %q: %s", r.status, body, r.body)
		case r.status == http.StatusOK || r.status == http.StatusCreated:
			var res Reservation
			if err := json.Unmarshal(r.body, &res); err != nil || res.ID == "" || len(res.Items) == 0 {
				t.Fatalf("success without a reservation for %q: %s (%v)", body, r.body, err)
			}
			for _, it := range res.Items {
				if it.Quantity < 1 || it.Quantity > MaxQuantity {
					t.Fatalf("reserved quantity %d for %q", it.Quantity, body)
				}
			}
		case r.status < 400:
			t.Fatalf("unexpected %d for %q: %s", r.status, body, r.body)
		}
		checkInvariants(t, e.db)
	})
}
