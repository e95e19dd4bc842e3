package notification

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/retailco/pos/internal/platform/errs"
)

// SMTPSender sends e-mail through an SMTP relay (net/smtp). It upgrades to
// TLS with STARTTLS whenever the server offers it, and authenticates with
// PLAIN when the URL has a user; net/smtp refuses to send a password over
// a connection that is neither TLS nor to localhost. It carries e-mail
// only: an SMS is errs.Invalid (NewSender routes SMS elsewhere).
type SMTPSender struct {
	addr      string // host:port
	host      string
	user      string
	password  string
	from      mail.Address
	localName string
	timeout   time.Duration
	now       func() time.Time
}

var _ Sender = (*SMTPSender)(nil)

// NewSMTPSender reads smtp://user:pass@host:port?from=…&timeout=…:
// from (required) is the From address, "Name <addr>" or a bare address;
// the port defaults to 25; timeout (a Go duration, default 20s) bounds a
// whole send; helo names this host in EHLO (default localhost). A bad URL
// is errs.Invalid.
func NewSMTPSender(rawURL string) (*SMTPSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", errs.Invalid)
	}
	if u.Scheme != "smtp" {
		return nil, fmt.Errorf("smtp url: scheme %q, want smtp: %w", u.Scheme, errs.Invalid)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("smtp url names no host: %w", errs.Invalid)
	}
	port := u.Port()
	if port == "" {
		port = "25"
	}
	q := u.Query()
	from, err := mail.ParseAddress(q.Get("from"))
	if err != nil {
		return nil, fmt.Errorf("smtp url: from=%q is not an address: %w", q.Get("from"), errs.Invalid)
	}
	s := &SMTPSender{
		addr: net.JoinHostPort(host, port), host: host, from: *from,
		localName: "localhost", timeout: 20 * time.Second, now: time.Now,
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.password, _ = u.User.Password()
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("smtp url: timeout=%q: %w", v, errs.Invalid)
		}
		s.timeout = d
	}
	if v := q.Get("helo"); v != "" {
		if strings.ContainsAny(v, " \r\n") {
			return nil, fmt.Errorf("smtp url: helo=%q: %w", v, errs.Invalid)
		}
		s.localName = v
	}
	return s, nil
}

// Send delivers m to the relay. Errors carry kinds: the relay's 5xx
// replies, a bad address and a failed login are errs.Invalid (permanent),
// its 4xx replies and network failures errs.Unavailable, a deadline
// errs.Timeout. The one ambiguous moment, a connection lost after the
// message's final dot and before the relay's reply, is reported as not
// accepted (Unavailable), like any other network failure.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	if m.Channel != ChannelEmail {
		return fmt.Errorf("smtp sender carries e-mail only, not %q: %w", m.Channel, errs.Invalid)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return fmt.Errorf("smtp: recipient %q is not an address: %w", m.To, errs.Invalid)
	}
	msg, err := s.compose(m, to)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return s.fail(ctx, "connect", err)
	}
	// net/smtp knows no contexts: the deadline bounds every read and
	// write, and cancellation closes the connection under it.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		_ = conn.Close()
		return s.fail(ctx, "greeting", err)
	}
	defer c.Close()
	if err := c.Hello(s.localName); err != nil {
		return s.fail(ctx, "hello", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}); err != nil {
			return s.fail(ctx, "starttls", err)
		}
	}
	if s.user != "" {
		if err := c.Auth(smtp.PlainAuth("", s.user, s.password, s.host)); err != nil {
			// The server's reply, or the connection, say what they say;
			// anything else is net/smtp refusing to log in (no AUTH
			// offered, a password it will not send in clear):
			// configuration, which no retry fixes.
			var tpErr *textproto.Error
			if errors.As(err, &tpErr) || isNetErr(err) || ctx.Err() != nil {
				return s.fail(ctx, "auth", err)
			}
			return fmt.Errorf("smtp auth: %v: %w", err, errs.Invalid)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return s.fail(ctx, "mail from", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return s.fail(ctx, "rcpt to", err)
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(ctx, "data", err)
	}
	if _, err := w.Write(msg); err != nil {
		_ = w.Close()
		return s.fail(ctx, "data", err)
	}
	if err := w.Close(); err != nil {
		return s.fail(ctx, "end of data", err)
	}
	// The relay has accepted the message; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// compose renders the message: headers (encoded per RFC 2047 where they
// are not ASCII, CR and LF removed so no header can be injected) and a
// quoted-printable UTF-8 body with CRLF line ends.
func (s *SMTPSender) compose(m Message, to *mail.Address) ([]byte, error) {
	if m.ID == "" || strings.ContainsAny(m.ID, "<>@ \r\n") {
		return nil, fmt.Errorf("smtp: message id %q: %w", m.ID, errs.Invalid)
	}
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", s.from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	header("Date", s.now().Format(time.RFC1123Z))
	header("Message-ID", "<"+m.ID+"@"+domainOf(s.from.Address)+">")
	header("MIME-Version", "1.0")
	header("Content-Type", `text/plain; charset="utf-8"`)
	header("Content-Transfer-Encoding", "quoted-printable")
	header("X-POS-Notification-ID", m.ID)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\r", "\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, fmt.Errorf("smtp: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("smtp: encode body: %w", err)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// fail gives an SMTP error its kind.
func (s *SMTPSender) fail(ctx context.Context, step string, err error) error {
	var tpErr *textproto.Error
	switch {
	case errors.As(err, &tpErr) && tpErr.Code >= 500:
		return fmt.Errorf("smtp %s: %s refused: %v: %w", step, s.addr, err, errs.Invalid)
	case errors.As(err, &tpErr):
		return fmt.Errorf("smtp %s: %s deferred: %v: %w", step, s.addr, err, errs.Unavailable)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("smtp %s: %s: %w (%v)", step, s.addr, errs.Timeout, err)
	default:
		return fmt.Errorf("smtp %s: %s: %w (%v)", step, s.addr, errs.Unavailable, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isNetErr tells a broken connection from a protocol answer.
func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// oneLine folds a header value onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// domainOf is the part of an address after @, for Message-ID.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i+1 < len(addr) {
		return addr[i+1:]
	}
	return "localhost"
}
