package notification

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/errs"
	pm "github.com/retailco/pos/internal/platform/metrics"
)

// Message is one notification as a Sender sees it.
type Message struct {
	// ID is the notification id: a sender that takes an idempotency key
	// or a message id uses it (SMTPSender puts it in Message-ID).
	ID string
	// Channel is email or sms.
	Channel Channel
	// To is the e-mail address or phone number.
	To string
	// Subject is the e-mail subject (SMS have none; it is kept for logs).
	Subject string
	// Body is the e-mail body or the SMS text.
	Body string
}

// Sender hands a message to whatever carries it. nil means the message was
// accepted. An error means it was NOT accepted, and the consumer may try
// again: an error of kind errs.Invalid (or errs.Unprocessable) says no
// retry can succeed (a refused address, a channel the sender does not
// carry) and fails the notification at once; any other kind is retried.
// Send must honour ctx's deadline.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender writes every message to a logger and counts it per channel
// (notification_messages_logged_total). It carries both channels, and it
// is the real sender of the embedded default: the notification row is the
// record, the log is the outbox.
type LogSender struct {
	log    *slog.Logger
	logged *prometheus.CounterVec
}

var _ Sender = (*LogSender)(nil)

// NewLogSender logs to log (nil: slog.Default()) and counts on reg (nil:
// counted, not exported).
func NewLogSender(log *slog.Logger, reg prometheus.Registerer) *LogSender {
	if log == nil {
		log = slog.Default()
	}
	logged := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "notification_messages_logged_total",
		Help: "Notification messages written to the log by the log sender, by channel.",
	}, []string{"channel"})
	if reg != nil {
		logged = pm.Register(reg, logged)
	}
	return &LogSender{log: log.With("sender", "log"), logged: logged}
}

// Send logs m.
func (s *LogSender) Send(ctx context.Context, m Message) error {
	if m.Channel != ChannelEmail && m.Channel != ChannelSMS {
		return fmt.Errorf("log sender: channel %q: %w", m.Channel, errs.Invalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("log sender: %w (%v)", errs.Unavailable, err)
	}
	s.log.InfoContext(ctx, "notification", "notification_id", m.ID, "channel", string(m.Channel),
		"to", m.To, "subject", m.Subject, "body", m.Body)
	s.logged.WithLabelValues(string(m.Channel)).Inc()
	return nil
}

// ByChannel sends each message with the sender of its channel; a channel
// without one is errs.Invalid (permanent).
type ByChannel map[Channel]Sender

var _ Sender = ByChannel(nil)

// Send hands m to its channel's sender.
func (b ByChannel) Send(ctx context.Context, m Message) error {
	s, ok := b[m.Channel]
	if !ok || s == nil {
		return fmt.Errorf("no sender for channel %q: %w", m.Channel, errs.Invalid)
	}
	return s.Send(ctx, m)
}

// NewSender is the process's sender: a LogSender for everything when
// smtpURL is empty (the embedded default); otherwise e-mail over SMTP and
// SMS still to the log, since the platform has no SMS gateway.
func NewSender(smtpURL string, log *slog.Logger, reg prometheus.Registerer) (Sender, error) {
	logSender := NewLogSender(log, reg)
	if smtpURL == "" {
		return logSender, nil
	}
	smtpSender, err := NewSMTPSender(smtpURL)
	if err != nil {
		return nil, err
	}
	return ByChannel{ChannelEmail: smtpSender, ChannelSMS: logSender}, nil
}
