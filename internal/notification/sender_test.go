package notification

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/retailco/pos/internal/platform/errs"
)

// TestLogSender: both channels are written to the log and counted; the
// inbox is not a sender's channel.
func TestLogSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	s := NewLogSender(slog.New(slog.NewJSONHandler(&buf, nil)), reg)
	must(t, s.Send(ctx, Message{ID: "ntf_1", Channel: ChannelEmail, To: "ann@example.com", Subject: "Hi", Body: "Hello Ann"}))
	must(t, s.Send(ctx, Message{ID: "ntf_2", Channel: ChannelSMS, To: "+15145550100", Subject: "Hi", Body: "short"}))
	must(t, s.Send(ctx, Message{ID: "ntf_3", Channel: ChannelSMS, To: "+15145550101", Body: "short"}))
	if err := s.Send(ctx, Message{ID: "ntf_4", Channel: ChannelInbox, To: "agent-7"}); !errs.IsKind(err, errs.Invalid) {
		t.Fatalf("inbox: %v, want Invalid", err)
	}

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), buf.String())
	}
	var first map[string]any
	must(t, json.Unmarshal([]byte(lines[0]), &first))
	if first["notification_id"] != "ntf_1" || first["to"] != "ann@example.com" || first["subject"] != "Hi" ||
		first["body"] != "Hello Ann" || first["channel"] != "email" {
		t.Fatalf("log line: %v", first)
	}
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "notification_messages_logged_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["email"] != 1 || counts["sms"] != 2 || len(counts) != 2 {
		t.Fatalf("counts: %v", counts)
	}
}

// TestNewSender: without SMTP everything goes to the log; with it, e-mail
// goes over SMTP and SMS still to the log; a channel nobody carries is a
// permanent error.
func TestNewSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, err := NewSender("", nil, nil)
	must(t, err)
	if _, ok := plain.(*LogSender); !ok {
		t.Fatalf("default sender is %T, want *LogSender", plain)
	}
	routed, err := NewSender("smtp://mail.example.com:2525?from=noreply@example.com", nil, nil)
	must(t, err)
	bc, ok := routed.(ByChannel)
	if !ok {
		t.Fatalf("sender with SMTP is %T", routed)
	}
	if _, ok := bc[ChannelEmail].(*SMTPSender); !ok {
		t.Errorf("e-mail goes to %T", bc[ChannelEmail])
	}
	if _, ok := bc[ChannelSMS].(*LogSender); !ok {
		t.Errorf("sms goes to %T", bc[ChannelSMS])
	}
	if err := bc.Send(ctx, Message{ID: "ntf_1", Channel: ChannelInbox}); !errs.IsKind(err, errs.Invalid) {
		t.Errorf("inbox through ByChannel: %v, want Invalid", err)
	}
	if _, err := NewSender("smtp://mail.example.com", nil, nil); !errs.IsKind(err, errs.Invalid) {
		t.Errorf("SMTP URL without from: %v, want Invalid", err)
	}
}
