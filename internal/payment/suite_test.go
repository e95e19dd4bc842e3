package payment

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/httpx"
	"github.com/retailco/pos/internal/platform/page"
	"github.com/retailco/pos/internal/platform/testkit"
)

// env is one adapter of Service under test and the gateway behind it.
type env struct {
	svc Service
	gw  *testGateway
}

// newEnv builds an env; latency slows the simulator down so concurrent
// requests really overlap with the gateway call.
type newEnv func(t *testing.T, latency time.Duration) env

// TestService runs one suite against every adapter of Service: the local
// implementation on each database engine, and Client over HTTP. The same
// assertions hold for all, errors included.
func TestService(t *testing.T) {
	t.Parallel()
	testkit.ForEachBackend(t, func(t *testing.T, b testkit.Backend) {
		runSuite(t, func(t *testing.T, latency time.Duration) env {
			gw := newTestGateway(NewSimulator(SimulatorOptions{Latency: latency}))
			return env{svc: New(testkit.OpenDB(t, b, Name, Migrations), gw, testOptions()), gw: gw}
		})
	})
	t.Run("client", func(t *testing.T) {
		runSuite(t, func(t *testing.T, latency time.Duration) env {
			gw := newTestGateway(NewSimulator(SimulatorOptions{Latency: latency}))
			local := New(testkit.OpenDB(t, testkit.SQLite, Name, Migrations), gw, testOptions())
			h := testkit.Serve(t, func(s *httpx.Server) { Routes(s.API, local) })
			return env{svc: NewClient(h.Client(Name, h.Keys.Service)), gw: gw}
		})
	})
}

// testOptions waits generously for in-flight duplicates: the suite proves
// the outcome under contention on a loaded CI machine, not the bound
// (TestWaitIsBounded does).
func testOptions() Options { return Options{WaitTimeout: 30 * time.Second} }

func runSuite(t *testing.T, newEnv newEnv) {
	ctx := context.Background()
	card := func(tid string, amount int64) NewPayment {
		return NewPayment{TransactionID: tid, AmountCents: amount, Method: MethodCard, Token: "tok_visa"}
	}

	t.Run("approve and read back", func(t *testing.T) {
		e := newEnv(t, 0)
		in := card("txn-approve", 2599)
		in.OrderID, in.CustomerID = "ord_1", "cus_1"
		out, err := e.svc.Charge(ctx, in)
		must(t, err)
		p := out.Payment
		if out.Replayed || p.ID == "" || p.Status != StatusCaptured || p.AmountCents != 2599 || p.RefundedCents != 0 ||
			p.Currency != "CAD" || p.Method != MethodCard || p.AuthorizationCode == "" || p.OrderID != "ord_1" || p.CustomerID != "cus_1" {
			t.Fatalf("charge: %+v", out)
		}
		got, err := e.svc.GetPayment(ctx, p.ID)
		must(t, err)
		if !samePayment(got, p) {
			t.Fatalf("get: %+v, want %+v", got, p)
		}
		byTxn, err := e.svc.GetPaymentByTransaction(ctx, "txn-approve")
		must(t, err)
		if !samePayment(byTxn, p) {
			t.Fatalf("by transaction: %+v, want %+v", byTxn, p)
		}
		if n := e.gw.chargeCalls("txn-approve"); n != 1 {
			t.Fatalf("gateway charged %d times", n)
		}
		if _, err := e.svc.GetPayment(ctx, "pay_missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("get unknown: %v", err)
		}
		if _, err := e.svc.GetPaymentByTransaction(ctx, "txn-missing"); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("get unknown transaction: %v", err)
		}
	})

	t.Run("idempotent replay and conflicting reuse", func(t *testing.T) {
		e := newEnv(t, 0)
		first, err := e.svc.Charge(ctx, card("txn-replay", 1000))
		must(t, err)
		again, err := e.svc.Charge(ctx, card("txn-replay", 1000))
		must(t, err)
		if !again.Replayed || !samePayment(again.Payment, first.Payment) {
			t.Fatalf("replay: %+v, first %+v", again, first)
		}
		withCurrency := card("txn-replay", 1000)
		withCurrency.Currency = "CAD" // the default spelled out is the same body
		if out, err := e.svc.Charge(ctx, withCurrency); err != nil || !out.Replayed {
			t.Fatalf("replay with explicit default currency: %+v %v", out, err)
		}
		conflicts := []struct {
			field string
			in    NewPayment
		}{
			{"amount_cents", card("txn-replay", 1001)},
			{"currency", func() NewPayment { p := card("txn-replay", 1000); p.Currency = "USD"; return p }()},
			{"method", func() NewPayment { p := card("txn-replay", 1000); p.Method = MethodGiftCard; return p }()},
			{"token", func() NewPayment { p := card("txn-replay", 1000); p.Token = "tok_other"; return p }()},
			{"order_id", func() NewPayment { p := card("txn-replay", 1000); p.OrderID = "ord_x"; return p }()},
		}
		for _, c := range conflicts {
			_, err := e.svc.Charge(ctx, c.in)
			if !errs.IsKind(err, errs.Conflict) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("reuse with another %s: %v, want a conflict naming it", c.field, err)
			}
		}
		if n := e.gw.chargeCalls("txn-replay"); n != 1 {
			t.Fatalf("gateway called %d times for one transaction", n)
		}
		got, err := e.svc.GetPayment(ctx, first.ID)
		must(t, err)
		if !samePayment(got, first.Payment) {
			t.Fatalf("conflicting requests changed the payment: %+v", got)
		}
	})

	t.Run("decline is stored and replayed without the gateway", func(t *testing.T) {
		e := newEnv(t, 0)
		in := NewPayment{TransactionID: "txn-declined", AmountCents: 4200, Method: MethodCard, Token: TokenDeclined}
		for i := 0; i < 3; i++ {
			out, err := e.svc.Charge(ctx, in)
			if !errs.IsKind(err, errs.PaymentRequired) || !strings.Contains(err.Error(), "declined") {
				t.Fatalf("attempt %d: %+v %v, want a decline", i, out, err)
			}
		}
		p, err := e.svc.GetPaymentByTransaction(ctx, "txn-declined")
		must(t, err)
		if p.Status != StatusDeclined || p.AuthorizationCode != "" || p.FailureReason == "" {
			t.Fatalf("stored decline: %+v", p)
		}
		if n := e.gw.chargeCalls("txn-declined"); n != 1 {
			t.Fatalf("gateway called %d times for a declined transaction", n)
		}
		if _, err := e.svc.Refund(ctx, p.ID, NewRefund{RefundID: "ref-declined", AmountCents: 1, Reason: "r"}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("refund of a declined payment: %v", err)
		}
	})

	t.Run("gateway failure is recorded and retryable", func(t *testing.T) {
		e := newEnv(t, 0)
		bad := NewPayment{TransactionID: "txn-error", AmountCents: 500, Method: MethodCard, Token: TokenError}
		for i := 1; i <= 2; i++ {
			if _, err := e.svc.Charge(ctx, bad); !errs.IsKind(err, errs.BadGateway) {
				t.Fatalf("attempt %d: %v, want bad gateway", i, err)
			}
			if n := e.gw.chargeCalls("txn-error"); n != i {
				t.Fatalf("attempt %d: gateway called %d times; a failed attempt must be retried", i, n)
			}
		}
		p, err := e.svc.GetPaymentByTransaction(ctx, "txn-error")
		must(t, err)
		if p.Status != StatusFailed || p.FailureReason == "" {
			t.Fatalf("stored failure: %+v", p)
		}
		// Another card under the same transaction id is another request:
		// the id is the processor's idempotency key too.
		other := bad
		other.Token = "tok_visa"
		if _, err := e.svc.Charge(ctx, other); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("same transaction, other token: %v", err)
		}

		// A transient failure: the retry of the same body captures.
		e.gw.failCharges("txn-flaky", 1)
		if _, err := e.svc.Charge(ctx, card("txn-flaky", 750)); !errs.IsKind(err, errs.BadGateway) {
			t.Fatalf("flaky first attempt: %v", err)
		}
		out, err := e.svc.Charge(ctx, card("txn-flaky", 750))
		must(t, err)
		if out.Replayed || out.Status != StatusCaptured || out.AuthorizationCode == "" || out.FailureReason != "" {
			t.Fatalf("retry after failure: %+v", out)
		}
		again, err := e.svc.Charge(ctx, card("txn-flaky", 750))
		must(t, err)
		if !again.Replayed || again.ID != out.ID {
			t.Fatalf("replay after retry: %+v", again)
		}
		if n := e.gw.chargeCalls("txn-flaky"); n != 2 {
			t.Fatalf("gateway called %d times, want 2 (failure, then success)", n)
		}
	})

	t.Run("invalid input writes nothing", func(t *testing.T) {
		e := newEnv(t, 0)
		cases := []struct {
			name  string
			in    NewPayment
			field string
		}{
			{"zero amount", card("txn-v1", 0), "amount_cents"},
			{"negative amount", card("txn-v2", -5), "amount_cents"},
			{"huge amount", card("txn-v3", maxAmountCents+1), "amount_cents"},
			{"bad currency", func() NewPayment { p := card("txn-v4", 1); p.Currency = "dollars"; return p }(), "currency"},
			{"cash is not a gateway method", func() NewPayment { p := card("txn-v5", 1); p.Method = "cash"; return p }(), "method"},
			{"no token", func() NewPayment { p := card("txn-v6", 1); p.Token = ""; return p }(), "token"},
			{"no transaction id", card("", 1), "transaction_id"},
			{"sql in transaction id", card("x'; DROP TABLE payments;--", 1), "transaction_id"},
			{"sql in order id", func() NewPayment { p := card("txn-v7", 1); p.OrderID = "1 OR 1=1"; return p }(), "order_id"},
		}
		for _, c := range cases {
			_, err := e.svc.Charge(ctx, c.in)
			if !errs.IsKind(err, errs.Invalid) || !hasField(err, c.field) {
				t.Errorf("%s: %v, want invalid %s (fields %v)", c.name, err, c.field, errs.Fields(err))
			}
		}
		res, err := e.svc.ListPayments(ctx, Filter{})
		must(t, err)
		if res.Total != 0 || e.gw.totalCharges() != 0 {
			t.Fatalf("invalid charges wrote %d payments, called the gateway %d times", res.Total, e.gw.totalCharges())
		}
	})

	t.Run("refunds partial, full, over and replayed", func(t *testing.T) {
		e := newEnv(t, 0)
		pay, err := e.svc.Charge(ctx, card("txn-refund", 10000))
		must(t, err)
		r1, err := e.svc.Refund(ctx, pay.ID, NewRefund{RefundID: "ref-1", AmountCents: 3000, Reason: "damaged"})
		must(t, err)
		if r1.Replayed || r1.ID == "" || r1.RefundID != "ref-1" || r1.PaymentID != pay.ID || r1.AmountCents != 3000 ||
			r1.Status != RefundSucceeded || r1.Currency != "CAD" || r1.Reason != "damaged" {
			t.Fatalf("refund: %+v", r1)
		}
		checkPayment(t, e.svc, pay.ID, StatusPartiallyRefunded, 3000)

		again, err := e.svc.Refund(ctx, pay.ID, NewRefund{RefundID: "ref-1", AmountCents: 3000, Reason: "damaged"})
		must(t, err)
		if !again.Replayed || again.ID != r1.ID {
			t.Fatalf("replay: %+v, first %+v", again, r1)
		}
		for _, c := range []struct {
			name string
			in   NewRefund
		}{
			{"other amount", NewRefund{RefundID: "ref-1", AmountCents: 2999, Reason: "damaged"}},
			{"other reason", NewRefund{RefundID: "ref-1", AmountCents: 3000, Reason: "changed mind"}},
			{"more than left", NewRefund{RefundID: "ref-2", AmountCents: 7001, Reason: "too much"}},
		} {
			if _, err := e.svc.Refund(ctx, pay.ID, c.in); !errs.IsKind(err, errs.Conflict) {
				t.Errorf("%s: %v, want conflict", c.name, err)
			}
		}
		checkPayment(t, e.svc, pay.ID, StatusPartiallyRefunded, 3000)

		r2, err := e.svc.Refund(ctx, pay.ID, NewRefund{RefundID: "ref-3", AmountCents: 7000, Reason: "rest"})
		must(t, err)
		if r2.Replayed || r2.Status != RefundSucceeded {
			t.Fatalf("refund of the rest: %+v", r2)
		}
		checkPayment(t, e.svc, pay.ID, StatusRefunded, 10000)
		if _, err := e.svc.Refund(ctx, pay.ID, NewRefund{RefundID: "ref-4", AmountCents: 1, Reason: "one more cent"}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("refund beyond a full refund: %v", err)
		}
		// A replay of the refund that emptied the payment is still a replay.
		if out, err := e.svc.Refund(ctx, pay.ID, NewRefund{RefundID: "ref-3", AmountCents: 7000, Reason: "rest"}); err != nil || !out.Replayed {
			t.Fatalf("replay after full refund: %+v %v", out, err)
		}

		other, err := e.svc.Charge(ctx, card("txn-refund-2", 500))
		must(t, err)
		if _, err := e.svc.Refund(ctx, other.ID, NewRefund{RefundID: "ref-1", AmountCents: 3000, Reason: "damaged"}); !errs.IsKind(err, errs.Conflict) {
			t.Fatalf("refund id reused on another payment: %v", err)
		}
		if _, err := e.svc.Refund(ctx, "pay_missing", NewRefund{RefundID: "ref-5", AmountCents: 1, Reason: "x"}); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("refund of unknown payment: %v", err)
		}
		if _, err := e.svc.Refund(ctx, other.ID, NewRefund{RefundID: "ref-6", AmountCents: 0, Reason: "x"}); !errs.IsKind(err, errs.Invalid) || !hasField(err, "amount_cents") {
			t.Fatalf("zero refund: %v", err)
		}
		if _, err := e.svc.Refund(ctx, other.ID, NewRefund{RefundID: "ref-7", AmountCents: 1, Reason: " "}); !errs.IsKind(err, errs.Invalid) || !hasField(err, "reason") {
			t.Fatalf("refund without reason: %v", err)
		}
		checkPayment(t, e.svc, other.ID, StatusCaptured, 0)

		list, err := e.svc.ListRefunds(ctx, pay.ID, page.Request{})
		must(t, err)
		if list.Total != 2 || len(list.Items) != 2 || list.Items[0].RefundID != "ref-1" || list.Items[1].RefundID != "ref-3" {
			t.Fatalf("refund list: %+v", list)
		}
		if _, err := e.svc.ListRefunds(ctx, "pay_missing", page.Request{}); !errs.IsKind(err, errs.NotFound) {
			t.Fatalf("refunds of unknown payment: %v", err)
		}
		if n := e.gw.refundCalls(); n != 2 {
			t.Fatalf("gateway refunded %d times, want 2", n)
		}
	})

	t.Run("failed refund releases and retries", func(t *testing.T) {
		e := newEnv(t, 0)
		pay, err := e.svc.Charge(ctx, card("txn-refund-fail", 2000))
		must(t, err)
		e.gw.failRefunds("ref-flaky", 1)
		in := NewRefund{RefundID: "ref-flaky", AmountCents: 2000, Reason: "cancelled"}
		if _, err := e.svc.Refund(ctx, pay.ID, in); !errs.IsKind(err, errs.BadGateway) {
			t.Fatalf("failing refund: %v", err)
		}
		checkPayment(t, e.svc, pay.ID, StatusCaptured, 0) // reservation released
		list, err := e.svc.ListRefunds(ctx, pay.ID, page.Request{})
		must(t, err)
		if list.Total != 1 || list.Items[0].Status != RefundFailed || list.Items[0].FailureReason == "" {
			t.Fatalf("failed refund not recorded: %+v", list)
		}
		out, err := e.svc.Refund(ctx, pay.ID, in)
		must(t, err)
		if out.Replayed || out.Status != RefundSucceeded {
			t.Fatalf("retried refund: %+v", out)
		}
		checkPayment(t, e.svc, pay.ID, StatusRefunded, 2000)
	})

	t.Run("summary totals", func(t *testing.T) {
		e := newEnv(t, 0)
		a, err := e.svc.Charge(ctx, card("txn-s1", 10000))
		must(t, err)
		_, err = e.svc.Charge(ctx, card("txn-s2", 5000))
		must(t, err)
		_, err = e.svc.Charge(ctx, NewPayment{TransactionID: "txn-s3", AmountCents: 700, Method: MethodGiftCard, Token: TokenDeclined})
		if !errs.IsKind(err, errs.PaymentRequired) {
			t.Fatalf("decline: %v", err)
		}
		_, err = e.svc.Charge(ctx, NewPayment{TransactionID: "txn-s4", AmountCents: 300, Method: MethodCard, Token: TokenError})
		if !errs.IsKind(err, errs.BadGateway) {
			t.Fatalf("failure: %v", err)
		}
		usd := card("txn-s5", 9999)
		usd.Currency = "USD"
		_, err = e.svc.Charge(ctx, usd)
		must(t, err)
		_, err = e.svc.Refund(ctx, a.ID, NewRefund{RefundID: "ref-s1", AmountCents: 2500, Reason: "partial"})
		must(t, err)

		s, err := e.svc.Summary(ctx, "")
		must(t, err)
		if s.Currency != "CAD" || s.CapturedCents != 15000 || s.RefundedCents != 2500 || s.NetCents != 12500 {
			t.Fatalf("CAD totals: %+v", s)
		}
		wantPayments := map[Status]int64{StatusPending: 0, StatusCaptured: 1, StatusPartiallyRefunded: 1, StatusRefunded: 0, StatusDeclined: 1, StatusFailed: 1}
		for st, n := range wantPayments {
			if s.Payments[st] != n {
				t.Errorf("payments %s: %d, want %d (%v)", st, s.Payments[st], n, s.Payments)
			}
		}
		if s.Refunds[RefundSucceeded] != 1 || s.Refunds[RefundFailed] != 0 || s.Refunds[RefundPending] != 0 {
			t.Errorf("refund counts: %v", s.Refunds)
		}
		u, err := e.svc.Summary(ctx, "USD")
		must(t, err)
		if u.CapturedCents != 9999 || u.RefundedCents != 0 || u.Payments[StatusCaptured] != 1 {
			t.Fatalf("USD totals: %+v", u)
		}
		if _, err := e.svc.Summary(ctx, "usd"); !errs.IsKind(err, errs.Invalid) {
			t.Fatalf("bad currency: %v", err)
		}
	})

	t.Run("list filters and paging", func(t *testing.T) {
		e := newEnv(t, 0)
		for i := 0; i < 25; i++ {
			in := card(fmt.Sprintf("txn-l%02d", i), int64(100+i))
			in.OrderID = fmt.Sprintf("ord_%d", i%5)
			in.CustomerID = fmt.Sprintf("cus_%d", i%2)
			if i%10 == 0 {
				in.Token = TokenDeclined
			}
			_, err := e.svc.Charge(ctx, in)
			if err != nil && !errs.IsKind(err, errs.PaymentRequired) {
				t.Fatal(err)
			}
		}
		cases := []struct {
			name      string
			f         Filter
			total     int64
			pageItems int
		}{
			{"all, first page", Filter{}, 25, 20},
			{"second page", Filter{Page: page.Request{Page: 2, PerPage: 20}}, 25, 5},
			{"order", Filter{OrderID: "ord_3"}, 5, 5},
			{"customer", Filter{CustomerID: "cus_1", Page: page.Request{PerPage: 5}}, 12, 5},
			{"declined", Filter{Status: StatusDeclined}, 3, 3},
			{"captured of a customer", Filter{Status: StatusCaptured, CustomerID: "cus_0"}, 10, 10},
			{"transaction", Filter{TransactionID: "txn-l07"}, 1, 1},
			{"quote is literal", Filter{OrderID: "x' OR '1'='1"}, 0, 0},
		}
		for _, c := range cases {
			res, err := e.svc.ListPayments(ctx, c.f)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.Total != c.total || len(res.Items) != c.pageItems {
				t.Errorf("%s: total %d items %d, want %d and %d", c.name, res.Total, len(res.Items), c.total, c.pageItems)
			}
		}
		res, err := e.svc.ListPayments(ctx, Filter{Page: page.Request{PerPage: 100}})
		must(t, err)
		for i := 1; i < len(res.Items); i++ {
			if res.Items[i].CreatedAt.After(res.Items[i-1].CreatedAt) {
				t.Fatalf("not newest first at %d", i)
			}
		}
		if _, err := e.svc.ListPayments(ctx, Filter{Status: "bogus"}); !errs.IsKind(err, errs.Invalid) {
			t.Fatalf("bogus status: %v", err)
		}
	})

	t.Run("concurrent charges of one transaction", func(t *testing.T) {
		e := newEnv(t, 30*time.Millisecond)
		const n = 20
		outs := make([]ChargeOutcome, n)
		errsOut := make([]error, n)
		parallel(n, func(i int) { outs[i], errsOut[i] = e.svc.Charge(ctx, card("txn-race", 4321)) })
		created := 0
		for i := range n {
			if errsOut[i] != nil {
				t.Fatalf("request %d: %v", i, errsOut[i])
			}
			if outs[i].ID != outs[0].ID || outs[i].Status != StatusCaptured || outs[i].AuthorizationCode != outs[0].AuthorizationCode {
				t.Fatalf("answers disagree: %+v vs %+v", outs[i], outs[0])
			}
			if !outs[i].Replayed {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d answers claim to have created the payment", created)
		}
		if c := e.gw.chargeCalls("txn-race"); c != 1 {
			t.Fatalf("gateway charged %d times", c)
		}
		res, err := e.svc.ListPayments(ctx, Filter{TransactionID: "txn-race"})
		must(t, err)
		if res.Total != 1 {
			t.Fatalf("%d payments stored", res.Total)
		}

		// Declines agree too, and also call the gateway once.
		parallel(n, func(i int) {
			_, errsOut[i] = e.svc.Charge(ctx, NewPayment{TransactionID: "txn-race-declined", AmountCents: 10, Method: MethodCard, Token: TokenDeclined})
		})
		for i, err := range errsOut {
			if !errs.IsKind(err, errs.PaymentRequired) {
				t.Fatalf("declined request %d: %v", i, err)
			}
		}
		if c := e.gw.chargeCalls("txn-race-declined"); c != 1 {
			t.Fatalf("gateway asked %d times for a declined transaction", c)
		}
	})

	t.Run("concurrent refunds never exceed the capture", func(t *testing.T) {
		e := newEnv(t, 5*time.Millisecond)
		pay, err := e.svc.Charge(ctx, card("txn-refund-race", 10000))
		must(t, err)
		const n = 20
		errsOut := make([]error, n)
		parallel(n, func(i int) {
			_, errsOut[i] = e.svc.Refund(ctx, pay.ID, NewRefund{RefundID: fmt.Sprintf("ref-race-%02d", i), AmountCents: 1000, Reason: "race"})
		})
		ok := 0
		for i, err := range errsOut {
			switch {
			case err == nil:
				ok++
			case !errs.IsKind(err, errs.Conflict):
				t.Fatalf("refund %d: %v, want success or conflict", i, err)
			}
		}
		if ok != 10 {
			t.Fatalf("%d refunds of 10%% succeeded, want exactly 10", ok)
		}
		checkPayment(t, e.svc, pay.ID, StatusRefunded, 10000)
		if c := e.gw.refundCalls(); c != 10 {
			t.Fatalf("gateway refunded %d times, want 10", c)
		}
		list, err := e.svc.ListRefunds(ctx, pay.ID, page.Request{PerPage: 100})
		must(t, err)
		if list.Total != 10 {
			t.Fatalf("%d refunds stored, want 10 (refused ones leave nothing)", list.Total)
		}
		s, err := e.svc.Summary(ctx, "CAD")
		must(t, err)
		if s.CapturedCents != 10000 || s.RefundedCents != 10000 || s.NetCents != 0 {
			t.Fatalf("summary after race: %+v", s)
		}

		// One refund id sent 20 times at once is one refund.
		other, err := e.svc.Charge(ctx, card("txn-refund-race-2", 5000))
		must(t, err)
		outs := make([]RefundOutcome, n)
		parallel(n, func(i int) {
			outs[i], errsOut[i] = e.svc.Refund(ctx, other.ID, NewRefund{RefundID: "ref-same", AmountCents: 1500, Reason: "same"})
		})
		for i := range n {
			if errsOut[i] != nil || outs[i].ID != outs[0].ID {
				t.Fatalf("same refund id, request %d: %+v %v", i, outs[i], errsOut[i])
			}
		}
		checkPayment(t, e.svc, other.ID, StatusPartiallyRefunded, 1500)
		if c := e.gw.refundCallsFor("ref-same"); c != 1 {
			t.Fatalf("gateway refunded ref-same %d times", c)
		}
	})
}

func checkPayment(t *testing.T, svc Service, id string, status Status, refunded int64) {
	t.Helper()
	p, err := svc.GetPayment(context.Background(), id)
	must(t, err)
	if p.Status != status || p.RefundedCents != refunded {
		t.Fatalf("payment %s: status %s refunded %d, want %s and %d", id, p.Status, p.RefundedCents, status, refunded)
	}
}

// samePayment compares what a replay must reproduce exactly.
func samePayment(a, b Payment) bool {
	return a.ID == b.ID && a.TransactionID == b.TransactionID && a.Status == b.Status && a.AmountCents == b.AmountCents &&
		a.RefundedCents == b.RefundedCents && a.Currency == b.Currency && a.Method == b.Method &&
		a.AuthorizationCode == b.AuthorizationCode && a.OrderID == b.OrderID && a.CustomerID == b.CustomerID &&
		a.CreatedAt.Equal(b.CreatedAt)
}

// parallel runs fn(0..n-1) at once, released together.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// testGateway wraps a real Gateway (the simulator), counting calls per
// idempotency key and failing chosen keys a given number of times, the way
// a flaky processor would.
type testGateway struct {
	inner Gateway

	mu          sync.Mutex
	charges     map[string]int
	refunds     map[string]int
	chargeFails map[string]int
	refundFails map[string]int
}

func newTestGateway(inner Gateway) *testGateway {
	return &testGateway{inner: inner, charges: map[string]int{}, refunds: map[string]int{},
		chargeFails: map[string]int{}, refundFails: map[string]int{}}
}

func (g *testGateway) Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error) {
	g.mu.Lock()
	g.charges[req.IdempotencyKey]++
	fail := g.chargeFails[req.IdempotencyKey] > 0
	if fail {
		g.chargeFails[req.IdempotencyKey]--
	}
	g.mu.Unlock()
	if fail {
		return ChargeResult{}, fmt.Errorf("injected processor failure: %w", errs.BadGateway)
	}
	return g.inner.Charge(ctx, req)
}

func (g *testGateway) Refund(ctx context.Context, req RefundRequest) (RefundResult, error) {
	g.mu.Lock()
	g.refunds[req.IdempotencyKey]++
	fail := g.refundFails[req.IdempotencyKey] > 0
	if fail {
		g.refundFails[req.IdempotencyKey]--
	}
	g.mu.Unlock()
	if fail {
		return RefundResult{}, fmt.Errorf("injected processor failure: %w", errs.BadGateway)
	}
	return g.inner.Refund(ctx, req)
}

func (g *testGateway) failCharges(key string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.chargeFails[key] = n
}

func (g *testGateway) failRefunds(key string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refundFails[key] = n
}

func (g *testGateway) chargeCalls(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.charges[key]
}

func (g *testGateway) totalCharges() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	total := 0
	for _, n := range g.charges {
		total += n
	}
	return total
}

func (g *testGateway) refundCalls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	total := 0
	for _, n := range g.refunds {
		total += n
	}
	return total
}

func (g *testGateway) refundCallsFor(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refunds[key]
}

func hasField(err error, field string) bool {
	for _, f := range errs.Fields(err) {
		if f.Field == field {
			return true
		}
	}
	return false
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
