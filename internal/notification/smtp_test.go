package notification

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/testkit"
)

// smtpServer is a tiny SMTP server on a loopback listener, enough of RFC
// 5321 for net/smtp: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
// It keeps every message it accepted.
type smtpServer struct {
	ln         net.Listener
	user, pass string
	// rejectRcpt is refused with 550; deferData answers DATA with 451.
	rejectRcpt string
	deferData  bool

	mu   sync.Mutex
	msgs []smtpReceived
}

// smtpReceived is one accepted message: the envelope and the raw data.
type smtpReceived struct {
	authUser string
	from     string
	rcpt     []string
	data     []byte
}

func startSMTP(t *testing.T, user, pass string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, user: user, pass: pass}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(conn)
			}()
		}
	}()
	return s
}

// url is the smtp:// URL of the server with the given credentials.
func (s *smtpServer) url(user, pass string) string {
	u := "smtp://"
	if user != "" {
		u += user + ":" + pass + "@"
	}
	return u + s.ln.Addr().String() + "?from=" + "POS%20Notifications%20%3Cnoreply%40retailco.example%3E"
}

func (s *smtpServer) received() []smtpReceived {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpReceived(nil), s.msgs...)
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	tp := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = tp.PrintfLine(format, args...) }
	reply("220 test.local ESMTP ready")
	var (
		authUser string
		cur      smtpReceived
	)
	// addr reads the path of MAIL FROM:<a> / RCPT TO:<a>, ignoring any
	// parameters after it (net/smtp adds BODY=8BITMIME).
	addr := func(arg, prefix string) string {
		if len(arg) < len(prefix) {
			return ""
		}
		path, _, _ := strings.Cut(strings.TrimSpace(arg[len(prefix):]), " ")
		return strings.TrimSuffix(strings.TrimPrefix(path, "<"), ">")
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply("250-test.local greets %s", arg)
			reply("250-8BITMIME")
			reply("250 AUTH PLAIN")
		case "HELO":
			reply("250 test.local")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			switch {
			case mech != "PLAIN":
				reply("504 5.5.4 mechanism not supported")
			case err != nil || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass:
				reply("535 5.7.8 authentication credentials invalid")
			default:
				authUser = parts[1]
				reply("235 2.7.0 authentication successful")
			}
		case "MAIL":
			if s.user != "" && authUser == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			cur = smtpReceived{authUser: authUser, from: addr(arg, "FROM:")}
			reply("250 2.1.0 ok")
		case "RCPT":
			to := addr(arg, "TO:")
			if to == s.rejectRcpt {
				reply("550 5.1.1 no such mailbox")
				continue
			}
			cur.rcpt = append(cur.rcpt, to)
			reply("250 2.1.5 ok")
		case "DATA":
			if s.deferData {
				reply("451 4.3.0 try again later")
				continue
			}
			reply("354 end data with <CR><LF>.<CR><LF>")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			cur.data = data
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			reply("250 2.0.0 queued")
		case "RSET":
			cur = smtpReceived{authUser: authUser}
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("502 5.5.2 command not recognised")
		}
	}
}

// TestSMTPSender sends through the in-test server and reads back what
// arrived: envelope, headers and body.
func TestSMTPSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := startSMTP(t, "pos", "s3cret")
	sender, err := NewSMTPSender(srv.url("pos", "s3cret"))
	must(t, err)
	sender.now = func() time.Time { return time.Date(2025, 6, 1, 14, 30, 0, 0, time.UTC) }

	subject := "Réclamation reçue: claim clm_1"
	body := "Hello Zoë,\n\nWe received your claim.\n.\n..a line starting with dots\n" + strings.Repeat("long ", 40) + "\nThe RetailCo team\n"
	must(t, sender.Send(ctx, Message{ID: "ntf_0001", Channel: ChannelEmail, To: "zoe@example.com", Subject: subject, Body: body}))

	got := srv.received()
	if len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
	m := got[0]
	if m.authUser != "pos" || m.from != "noreply@retailco.example" || len(m.rcpt) != 1 || m.rcpt[0] != "zoe@example.com" {
		t.Fatalf("envelope: %+v", m)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, m.data)
	}
	h := msg.Header
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Name != "POS Notifications" || from.Address != "noreply@retailco.example" {
		t.Errorf("From %q: %v", h.Get("From"), err)
	}
	if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != "zoe@example.com" {
		t.Errorf("To %q: %v", h.Get("To"), err)
	}
	var dec mime.WordDecoder
	if s, err := dec.DecodeHeader(h.Get("Subject")); err != nil || s != subject {
		t.Errorf("Subject %q decodes to %q (%v), want %q", h.Get("Subject"), s, err, subject)
	}
	if !isASCII(h.Get("Subject")) {
		t.Errorf("Subject is not RFC 2047 encoded: %q", h.Get("Subject"))
	}
	if d, err := h.Date(); err != nil || !d.Equal(time.Date(2025, 6, 1, 14, 30, 0, 0, time.UTC)) {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	for k, want := range map[string]string{
		"Message-Id":                "<ntf_0001@retailco.example>",
		"Mime-Version":              "1.0",
		"Content-Type":              `text/plain; charset="utf-8"`,
		"Content-Transfer-Encoding": "quoted-printable",
		"X-Pos-Notification-Id":     "ntf_0001",
	} {
		if h.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, h.Get(k), want)
		}
	}
	raw, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	must(t, err)
	if strings.TrimRight(string(raw), "\r\n") != strings.TrimRight(body, "\n") {
		t.Errorf("body:\n%q\nwant\n%q", raw, body)
	}
	for _, line := range strings.Split(string(m.data), "\n") {
		if len(line) > 78 {
			t.Errorf("line over 78 characters: %q", line)
		}
	}
}

// TestSMTPSenderErrors: each failure has the kind the consumer acts on —
// Invalid never retried, Unavailable and Timeout retried.
func TestSMTPSenderErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := startSMTP(t, "pos", "s3cret")
	srv.rejectRcpt = "nobody@example.com"
	ok := Message{ID: "ntf_1", Channel: ChannelEmail, To: "ann@example.com", Subject: "s", Body: "b"}

	send := func(url string, m Message) error {
		t.Helper()
		s, err := NewSMTPSender(url)
		must(t, err)
		return s.Send(ctx, m)
	}
	with := func(f func(*Message)) Message { m := ok; f(&m); return m }

	cases := []struct {
		name string
		err  error
		kind *errs.Kind
	}{
		{"wrong password", send(srv.url("pos", "wrong"), ok), errs.Invalid},
		{"no login where one is required", send(srv.url("", ""), ok), errs.Invalid},
		{"refused recipient", send(srv.url("pos", "s3cret"), with(func(m *Message) { m.To = "nobody@example.com" })), errs.Invalid},
		{"sms", send(srv.url("pos", "s3cret"), with(func(m *Message) { m.Channel = ChannelSMS; m.To = "+15145550100" })), errs.Invalid},
		{"header injection", send(srv.url("pos", "s3cret"), with(func(m *Message) { m.To = "ann@example.com\r\nBcc: eve@example.com" })), errs.Invalid},
		{"bad message id", send(srv.url("pos", "s3cret"), with(func(m *Message) { m.ID = "x>\r\nBcc: eve" })), errs.Invalid},
	}
	for _, c := range cases {
		if !errs.IsKind(c.err, c.kind) {
			t.Errorf("%s: %v, want kind %s", c.name, c.err, c.kind)
		}
	}
	if n := len(srv.received()); n != 0 {
		t.Fatalf("%d messages accepted by failed sends", n)
	}

	// A temporary refusal and a dead server are worth retrying.
	srv.mu.Lock()
	srv.deferData = true
	srv.mu.Unlock()
	if err := send(srv.url("pos", "s3cret"), ok); !errs.IsKind(err, errs.Unavailable) {
		t.Errorf("451 on DATA: %v, want Unavailable", err)
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	if err := send("smtp://"+deadAddr+"?from=noreply@retailco.example", ok); !errs.IsKind(err, errs.Unavailable) {
		t.Errorf("no server: %v, want Unavailable", err)
	}

	// A server that accepts and then says nothing: the timeout bounds it.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var (
		muteMu    sync.Mutex
		muteConns []net.Conn
	)
	t.Cleanup(func() {
		_ = mute.Close()
		muteMu.Lock()
		defer muteMu.Unlock()
		for _, c := range muteConns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			muteMu.Lock()
			muteConns = append(muteConns, c)
			muteMu.Unlock()
		}
	}()
	start := time.Now()
	if err := send("smtp://"+mute.Addr().String()+"?from=noreply@retailco.example&timeout=300ms", ok); !errs.IsKind(err, errs.Timeout) {
		t.Errorf("mute server: %v, want Timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout did not bound the send: %s", d)
	}
}

// TestSMTPURL: configuration mistakes are caught when the sender is made.
func TestSMTPURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"smtp://mail.example.com",                     // no from
		"smtp://mail.example.com?from=not-an-address", // bad from
		"smtps://mail.example.com?from=a@example.com", // unsupported scheme
		"smtp://?from=a@example.com",                  // no host
		"smtp://mail.example.com?from=a@example.com&timeout=soon",
		"smtp://mail.example.com?from=a@example.com&helo=two%20words",
		"://bad",
	} {
		if _, err := NewSMTPSender(u); !errs.IsKind(err, errs.Invalid) {
			t.Errorf("%q: %v, want Invalid", u, err)
		}
	}
	s, err := NewSMTPSender("smtp://u:p%40ss@mail.example.com?from=a@example.com")
	must(t, err)
	if s.addr != "mail.example.com:25" || s.user != "u" || s.password != "p@ss" || s.timeout != 20*time.Second {
		t.Errorf("parsed %+v", s)
	}
}

// TestConsumerOverSMTP: the consumer with the binary's sender (NewSender)
// delivers the customer's e-mail through SMTP and the SMS to the log.
func TestConsumerOverSMTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := startSMTP(t, "pos", "s3cret")
	sender, err := NewSender(srv.url("pos", "s3cret"), testkit.Logger(), nil)
	must(t, err)
	customers := newCustomers(t)
	ann := register(t, customers, "Ann", testkit.ID("ann")+"@example.com", "+1 514-555-0100")
	gdb := openDB(t, testkit.SQLite)
	c := NewConsumer(gdb, customers, sender, Options{Logger: testkit.Logger()})
	env := orderConfirmed(t, eventCtx("corr-smtp"), "ord_smtp_1", ann.ID, 11500)
	must(t, c.Handle(ctx, env))
	must(t, c.Handle(ctx, env)) // a redelivery sends no second e-mail

	got := srv.received()
	if len(got) != 1 || got[0].rcpt[0] != ann.Email {
		t.Fatalf("messages: %+v", got)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].data))
	must(t, err)
	raw, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	must(t, err)
	rows := rowsOf(t, gdb, env.EventID)
	if len(rows) != 2 || rows[0].Status != string(StatusSent) || rows[1].Status != string(StatusSent) {
		t.Fatalf("rows: %+v", rows)
	}
	if want := fmt.Sprintf("<%s@retailco.example>", rows[0].ID); msg.Header.Get("Message-Id") != want {
		t.Errorf("Message-ID %q, want %q", msg.Header.Get("Message-Id"), want)
	}
	if !strings.Contains(string(raw), "Total: 115.00 CAD") || msg.Header.Get("Subject") != "Order ord_smtp_1 confirmed: 115.00 CAD" {
		t.Errorf("message: %s\n%s", msg.Header.Get("Subject"), raw)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
