package events

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
)

// busMigrations is the SQL log's schema, applied as the migration set "bus".
//
//go:embed migrations/*.sql
var busMigrations embed.FS

// SQLBus is the embedded bus: a log in a SQL database of its own
// (<data-dir>/bus.db under `pos serve --all`), with the same at-least-once
// contract as RedisBus. Each stream is a table range ordered by a gap-free
// sequence; each consumer group keeps a cursor and its pending messages in
// the same database, so a crash at any point loses nothing. Subscribers in
// this process are woken by each publish; BlockTime is the poll fallback for
// publishers in other processes (several processes may share one
// PostgreSQL-backed bus).
type SQLBus struct {
	db      *gorm.DB
	owned   bool
	dialect db.Dialect
	o       Options
	m       *Metrics
	log     *slog.Logger
	subs    subscriptions

	wakeMu sync.Mutex
	wake   chan struct{}

	stopMaint context.CancelFunc
	maintDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ Bus = (*SQLBus)(nil)

// OpenSQLBus opens the bus's own database (Context "bus" unless set: the file
// <DataDir>/bus.db, or the schema "bus" on PostgreSQL), migrates it and
// returns the bus, which closes the database on Close.
func OpenSQLBus(ctx context.Context, dbo db.Options, o Options) (*SQLBus, error) {
	if dbo.Context == "" {
		dbo.Context = "bus"
	}
	gdb, err := db.Open(ctx, dbo)
	if err != nil {
		return nil, err
	}
	b, err := NewSQLBus(ctx, gdb, o)
	if err != nil {
		_ = db.Close(gdb)
		return nil, err
	}
	b.owned = true
	return b, nil
}

// NewSQLBus runs the bus on gdb, applying its migration set "bus". The
// caller keeps ownership of gdb.
func NewSQLBus(ctx context.Context, gdb *gorm.DB, o Options) (*SQLBus, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := NewMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	if err := db.MigrateSet(ctx, gdb, "bus", busMigrations); err != nil {
		return nil, fmt.Errorf("migrate event bus: %w", err)
	}
	b := &SQLBus{
		db: gdb, dialect: db.DialectOf(gdb), o: o, m: m, log: o.Logger.With("component", "eventbus"),
		wake: make(chan struct{}), maintDone: make(chan struct{}),
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.stopMaint = cancel
	go b.maintain(mctx)
	return b, nil
}

// forUpdate locks the selected row on PostgreSQL; SQLite needs nothing,
// its transactions take the one write lock at BEGIN (_txlock=immediate).
func (b *SQLBus) forUpdate() string {
	if b.dialect == db.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// busMessageRow is one entry of a stream.
type busMessageRow struct {
	Stream    string
	Seq       int64
	EventID   string
	EventType string
	Envelope  string
	AddedMs   int64
}

func (busMessageRow) TableName() string { return "bus_messages" }

// Publish appends envs to their streams in one transaction. An event id
// already in its stream is skipped, so a relay that publishes twice after a
// crash does not deliver twice.
func (b *SQLBus) Publish(ctx context.Context, envs ...Envelope) error {
	if len(envs) == 0 {
		return nil
	}
	var order []string
	byStream := map[string][]Envelope{}
	payload := map[string]string{}
	for _, e := range envs {
		if err := e.Validate(); err != nil {
			return err
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.EventID, err)
		}
		if _, ok := byStream[e.Stream]; !ok {
			order = append(order, e.Stream)
		}
		byStream[e.Stream] = append(byStream[e.Stream], e)
		payload[e.EventID] = string(raw)
	}
	// Lock the streams' rows in one global order, or two publishers of
	// [a b] and [b a] could deadlock each other on PostgreSQL.
	sort.Strings(order)
	var added []Envelope
	err := withRetry(ctx, func() error {
		added = added[:0]
		return b.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			now := time.Now().UnixMilli()
			for _, st := range order {
				if err := tx.Exec(`INSERT INTO bus_streams (stream, last_seq) VALUES (?, 0) ON CONFLICT (stream) DO NOTHING`, st).Error; err != nil {
					return err
				}
				// Holding this row until commit is what keeps sequence
				// numbers in commit order (see the migration).
				var last int64
				if err := db.ScanRow(tx.Raw(`SELECT last_seq FROM bus_streams WHERE stream = ?`+b.forUpdate(), st), &last); err != nil {
					return err
				}
				group := byStream[st]
				ids := make([]string, len(group))
				for i, e := range group {
					ids[i] = e.EventID
				}
				var existing []string
				if err := tx.Raw(`SELECT event_id FROM bus_messages WHERE stream = ? AND event_id IN ?`, st, ids).Scan(&existing).Error; err != nil {
					return err
				}
				skip := map[string]bool{}
				for _, id := range existing {
					skip[id] = true
				}
				var rows []busMessageRow
				for _, e := range group {
					if skip[e.EventID] {
						continue
					}
					skip[e.EventID] = true // the same id twice in one call
					last++
					rows = append(rows, busMessageRow{Stream: st, Seq: last, EventID: e.EventID, EventType: e.EventType, Envelope: payload[e.EventID], AddedMs: now})
					added = append(added, e)
				}
				if len(rows) == 0 {
					continue
				}
				if err := tx.CreateInBatches(rows, 200).Error; err != nil {
					return err
				}
				if err := tx.Exec(`UPDATE bus_streams SET last_seq = ? WHERE stream = ?`, last, st).Error; err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("publish %d events: %w", len(envs), err)
	}
	for _, e := range added {
		b.m.published.WithLabelValues(e.EventType).Inc()
	}
	if len(added) > 0 {
		b.notify()
	}
	return nil
}

// withRetry repeats fn when the engine reports a transient conflict
// (PostgreSQL serialization failure or deadlock, SQLite busy past its
// timeout); the transaction is whole or absent, so repeating is safe.
func withRetry(ctx context.Context, fn func() error) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = fn(); err == nil || !db.IsSerializationFailure(err) || ctx.Err() != nil {
			return err
		}
		sleepCtx(ctx, time.Duration(10<<i)*time.Millisecond)
	}
	return err
}

// notify wakes every subscriber of this bus waiting for new messages.
func (b *SQLBus) notify() {
	b.wakeMu.Lock()
	close(b.wake)
	b.wake = make(chan struct{})
	b.wakeMu.Unlock()
}

func (b *SQLBus) wakeChan() <-chan struct{} {
	b.wakeMu.Lock()
	defer b.wakeMu.Unlock()
	return b.wake
}

// Subscribe starts a consumer of group on streams; see Subscriber.
func (b *SQLBus) Subscribe(ctx context.Context, group string, streams []string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validateSubscription(group, streams, h); err != nil {
		return nil, err
	}
	streams = append([]string(nil), streams...)
	if err := b.subs.reserve(group, streams); err != nil {
		return nil, err
	}
	t := &sqlTransport{b: b, group: group, consumer: b.o.Consumer, streams: streams}
	sub, err := startSubscription(ctx, group, streams, h, subscribeOptions(opts), t, b.o, b.m, b.subs.remove)
	if err != nil {
		b.subs.unreserve(group, streams)
		return nil, err
	}
	b.subs.add(sub)
	return sub, nil
}

// DeadLetters lists the group's dead letters, oldest first.
func (b *SQLBus) DeadLetters(ctx context.Context, group string, limit int) ([]DeadLetter, error) {
	var rows []struct {
		Grp        string
		Stream     string
		Seq        int64
		Envelope   string
		Deliveries int
		LastError  string
		DeadMs     int64
	}
	err := b.db.WithContext(ctx).Raw(`SELECT grp, stream, seq, envelope, deliveries, last_error, dead_ms
		FROM bus_dead_letters WHERE grp = ? ORDER BY dead_ms, stream, seq LIMIT ?`, group, limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", group, err)
	}
	out := make([]DeadLetter, 0, len(rows))
	for _, r := range rows {
		dl := DeadLetter{Group: r.Grp, Stream: r.Stream, MessageID: strconv.FormatInt(r.Seq, 10), Raw: r.Envelope,
			Deliveries: r.Deliveries, Error: r.LastError, DeadAt: time.UnixMilli(r.DeadMs).UTC()}
		dl.Envelope, _ = decodeEnvelope(r.Envelope)
		out = append(out, dl)
	}
	return out, nil
}

// Trim deletes entries every group has acknowledged and older than keep.
// The bound per stream is the lowest of each group's oldest pending entry
// and first undelivered one, so nothing a group still needs can go.
func (b *SQLBus) Trim(ctx context.Context, keep time.Duration) (int64, error) {
	gdb := b.db.WithContext(ctx)
	var streams []string
	if err := gdb.Raw(`SELECT stream FROM bus_streams`).Scan(&streams).Error; err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	var total int64
	for _, st := range streams {
		var lastSeq int64
		if err := db.ScanRow(gdb.Raw(`SELECT last_seq FROM bus_streams WHERE stream = ?`, st), &lastSeq); err != nil {
			return total, fmt.Errorf("trim %s: %w", st, err)
		}
		bound := lastSeq + 1
		// Cursors first, then pending: an entry moves from "after the
		// cursor" to "pending" to "acked", never back, so a bound taken in
		// this order is still safe when it is used.
		var cursors []int64
		if err := gdb.Raw(`SELECT last_delivered FROM bus_groups WHERE stream = ?`, st).Scan(&cursors).Error; err != nil {
			return total, fmt.Errorf("trim %s: %w", st, err)
		}
		for _, c := range cursors {
			bound = min(bound, c+1)
		}
		var oldest sql.NullInt64
		if err := db.ScanRow(gdb.Raw(`SELECT MIN(seq) FROM bus_pending WHERE stream = ?`, st), &oldest); err != nil {
			return total, fmt.Errorf("trim %s: %w", st, err)
		}
		if oldest.Valid {
			bound = min(bound, oldest.Int64)
		}
		res := gdb.Exec(`DELETE FROM bus_messages WHERE stream = ? AND seq < ? AND added_ms < ?`,
			st, bound, time.Now().Add(-keep).UnixMilli())
		if res.Error != nil {
			return total, fmt.Errorf("trim %s: %w", st, res.Error)
		}
		total += res.RowsAffected
	}
	return total, nil
}

// maintain trims the streams every TrimInterval.
func (b *SQLBus) maintain(ctx context.Context) {
	defer close(b.maintDone)
	if b.o.TrimInterval < 0 {
		return
	}
	t := time.NewTicker(b.o.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.Trim(ctx, b.o.Retention); err != nil && ctx.Err() == nil {
				b.log.Warn("trimming the event log failed", "err", err)
			}
		}
	}
}

// Close stops every subscription and, when the bus opened its database,
// closes it.
func (b *SQLBus) Close() error {
	b.closeOnce.Do(func() {
		b.stopMaint()
		err := b.subs.closeAll()
		<-b.maintDone
		if b.owned {
			err = errors.Join(err, db.Close(b.db))
		}
		b.closeErr = err
	})
	return b.closeErr
}

// sqlTransport is one subscription's view of the SQL log.
type sqlTransport struct {
	b        *SQLBus
	group    string
	consumer string
	streams  []string
}

func (t *sqlTransport) prepare(ctx context.Context) error {
	now := time.Now().UnixMilli()
	for _, st := range t.streams {
		// Cursor 0: a new group starts at the beginning of the stream.
		err := t.b.db.WithContext(ctx).Exec(`INSERT INTO bus_groups (grp, stream, last_delivered, created_ms)
			VALUES (?, ?, 0, ?) ON CONFLICT (grp, stream) DO NOTHING`, t.group, st, now).Error
		if err != nil {
			return fmt.Errorf("create group %s on %s: %w", t.group, st, err)
		}
	}
	return nil
}

func (t *sqlTransport) fetch(ctx context.Context, limit int, wait time.Duration) ([]delivery, error) {
	deadline := time.Now().Add(wait)
	for {
		// Take the wake channel before looking, so a publish between the
		// look and the wait is not missed.
		wake := t.b.wakeChan()
		ds, err := t.claimNew(ctx, limit)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		timer := time.NewTimer(left)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, nil
		case <-wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// claimNew moves up to limit entries past the group's cursors into this
// consumer's pending list.
func (t *sqlTransport) claimNew(ctx context.Context, limit int) ([]delivery, error) {
	gdb := t.b.db.WithContext(ctx)
	// Look before taking a write transaction: most polls find nothing, and
	// on SQLite every write transaction queues for the one write lock.
	var ready []string
	err := gdb.Raw(`SELECT g.stream FROM bus_groups g JOIN bus_streams s ON s.stream = g.stream
		WHERE g.grp = ? AND g.stream IN ? AND s.last_seq > g.last_delivered ORDER BY g.stream`, t.group, t.streams).Scan(&ready).Error
	if err != nil || len(ready) == 0 {
		return nil, err
	}
	// Share the batch between streams so a busy one cannot starve the rest.
	per := max(1, limit/len(ready))
	var out []delivery
	err = withRetry(ctx, func() error {
		out = out[:0]
		return gdb.Transaction(func(tx *gorm.DB) error {
			now := time.Now()
			nowMs := now.UnixMilli()
			for _, st := range ready {
				var cursor int64
				if err := db.ScanRow(tx.Raw(`SELECT last_delivered FROM bus_groups WHERE grp = ? AND stream = ?`+t.b.forUpdate(), t.group, st), &cursor); err != nil {
					return err
				}
				var msgs []struct {
					Seq      int64
					Envelope string
				}
				if err := tx.Raw(`SELECT seq, envelope FROM bus_messages WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?`, st, cursor, per).Scan(&msgs).Error; err != nil {
					return err
				}
				if len(msgs) == 0 {
					continue
				}
				rows := make([]map[string]any, len(msgs))
				for i, m := range msgs {
					rows[i] = map[string]any{"grp": t.group, "stream": st, "seq": m.Seq, "consumer": t.consumer, "deliveries": 1, "delivered_ms": nowMs}
					out = append(out, t.delivery(st, m.Seq, m.Envelope, 1, now))
				}
				if err := tx.Table("bus_pending").CreateInBatches(rows, 200).Error; err != nil {
					return err
				}
				if err := tx.Exec(`UPDATE bus_groups SET last_delivered = ? WHERE grp = ? AND stream = ?`, msgs[len(msgs)-1].Seq, t.group, st).Error; err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// seqOf is the sequence number behind a SQL delivery's id.
func seqOf(d delivery) int64 {
	n, _ := strconv.ParseInt(d.id, 10, 64)
	return n
}

func (t *sqlTransport) delivery(stream string, seq int64, raw string, deliveries int, at time.Time) delivery {
	d := delivery{stream: stream, id: strconv.FormatInt(seq, 10), raw: raw, deliveries: deliveries,
		deliveredAt: at, token: at.UnixMilli()}
	d.env, d.badEnv = decodeEnvelope(raw)
	return d
}

func (t *sqlTransport) redeliver(ctx context.Context, d delivery) (delivery, bool, error) {
	seq := seqOf(d)
	now := time.Now()
	// Compare-and-set on owner and delivery stamp: if another consumer
	// reclaimed the message meanwhile, it is theirs now.
	var n []int
	err := t.b.db.WithContext(ctx).Raw(`UPDATE bus_pending SET deliveries = deliveries + 1, delivered_ms = ?
		WHERE grp = ? AND stream = ? AND seq = ? AND consumer = ? AND delivered_ms = ? RETURNING deliveries`,
		now.UnixMilli(), t.group, d.stream, seq, t.consumer, d.token).Scan(&n).Error
	if err != nil || len(n) == 0 {
		return d, false, err
	}
	d.deliveries, d.deliveredAt, d.token = n[0], now, now.UnixMilli()
	return d, true, nil
}

func (t *sqlTransport) reclaim(ctx context.Context, limit int) ([]delivery, error) {
	gdb := t.b.db.WithContext(ctx)
	now := time.Now()
	var idle []struct {
		Stream      string
		Seq         int64
		DeliveredMs int64
		Envelope    string
	}
	err := gdb.Raw(`SELECT p.stream, p.seq, p.delivered_ms, m.envelope
		FROM bus_pending p JOIN bus_messages m ON m.stream = p.stream AND m.seq = p.seq
		WHERE p.grp = ? AND p.stream IN ? AND p.delivered_ms <= ?
		ORDER BY p.delivered_ms, p.stream, p.seq LIMIT ?`,
		t.group, t.streams, now.Add(-t.b.o.ClaimMinIdle).UnixMilli(), limit).Scan(&idle).Error
	if err != nil {
		return nil, err
	}
	var out []delivery
	for _, p := range idle {
		// Compare-and-set on the stamp we read: of two consumers reclaiming
		// at once, one wins.
		var n []int
		err := gdb.Raw(`UPDATE bus_pending SET consumer = ?, deliveries = deliveries + 1, delivered_ms = ?
			WHERE grp = ? AND stream = ? AND seq = ? AND delivered_ms = ? RETURNING deliveries`,
			t.consumer, now.UnixMilli(), t.group, p.Stream, p.Seq, p.DeliveredMs).Scan(&n).Error
		if err != nil {
			return out, err
		}
		if len(n) == 1 {
			out = append(out, t.delivery(p.Stream, p.Seq, p.Envelope, n[0], now))
		}
	}
	return out, nil
}

func (t *sqlTransport) ack(ctx context.Context, ds []delivery) error {
	if len(ds) == 1 {
		return t.b.db.WithContext(ctx).Exec(`DELETE FROM bus_pending WHERE grp = ? AND stream = ? AND seq = ?`,
			t.group, ds[0].stream, seqOf(ds[0])).Error
	}
	bySeq := map[string][]int64{}
	for _, d := range ds {
		bySeq[d.stream] = append(bySeq[d.stream], seqOf(d))
	}
	var all []error
	for st, seqs := range bySeq {
		all = append(all, t.b.db.WithContext(ctx).Exec(`DELETE FROM bus_pending WHERE grp = ? AND stream = ? AND seq IN ?`,
			t.group, st, seqs).Error)
	}
	return errors.Join(all...)
}

func (t *sqlTransport) deadLetter(ctx context.Context, d delivery, cause string) error {
	return withRetry(ctx, func() error {
		return t.b.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			err := tx.Exec(`INSERT INTO bus_dead_letters (grp, stream, seq, event_id, event_type, envelope, deliveries, last_error, dead_ms)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (grp, stream, seq) DO NOTHING`,
				t.group, d.stream, seqOf(d), d.env.EventID, d.env.EventType, d.raw, d.deliveries, cause, time.Now().UnixMilli()).Error
			if err != nil {
				return err
			}
			return tx.Exec(`DELETE FROM bus_pending WHERE grp = ? AND stream = ? AND seq = ?`, t.group, d.stream, seqOf(d)).Error
		})
	})
}

func (t *sqlTransport) release(ctx context.Context, ds []delivery) error {
	var all []error
	for _, d := range ds {
		// Stamp 0 makes the message idle since forever: the next reclaim
		// of any consumer takes it.
		err := t.b.db.WithContext(ctx).Exec(`UPDATE bus_pending SET delivered_ms = 0
			WHERE grp = ? AND stream = ? AND seq = ? AND consumer = ? AND delivered_ms = ?`,
			t.group, d.stream, seqOf(d), t.consumer, d.token).Error
		all = append(all, err)
	}
	return errors.Join(all...)
}

func (t *sqlTransport) lag(ctx context.Context) (map[string]time.Duration, error) {
	gdb := t.b.db.WithContext(ctx)
	now := time.Now().UnixMilli()
	out := make(map[string]time.Duration, len(t.streams))
	for _, st := range t.streams {
		var cursor int64
		if err := db.ScanRow(gdb.Raw(`SELECT last_delivered FROM bus_groups WHERE grp = ? AND stream = ?`, t.group, st), &cursor); err != nil {
			return nil, err
		}
		var oldestPending sql.NullInt64
		if err := db.ScanRow(gdb.Raw(`SELECT MIN(seq) FROM bus_pending WHERE grp = ? AND stream = ?`, t.group, st), &oldestPending); err != nil {
			return nil, err
		}
		// The oldest unacknowledged entry is the oldest pending one or the
		// first after the cursor, whichever is older.
		var added []int64
		err := gdb.Raw(`SELECT added_ms FROM bus_messages WHERE stream = ? AND seq > ? ORDER BY seq LIMIT 1`, st, cursor).Scan(&added).Error
		if err != nil {
			return nil, err
		}
		if oldestPending.Valid {
			var p []int64
			if err := gdb.Raw(`SELECT added_ms FROM bus_messages WHERE stream = ? AND seq = ?`, st, oldestPending.Int64).Scan(&p).Error; err != nil {
				return nil, err
			}
			added = append(added, p...)
		}
		if len(added) > 0 {
			out[st] = time.Duration(max(0, now-min(added[0], added[len(added)-1]))) * time.Millisecond
		}
	}
	return out, nil
}
