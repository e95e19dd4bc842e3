package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/retailco/pos/internal/platform/errs"
)

// RedisBus is the production bus on Redis Streams. Keys (Prefix "pos:" by
// default; tests give each test its own):
//
//	<prefix>events:<stream>                 the stream, one per producing context
//	<prefix>events:<stream>:seen:<event id> publish dedup marker, expires after DedupWindow
//	<prefix>events-dead:<group>             the group's dead-letter stream
//
// Groups are created at "0" (the start of the stream) with MKSTREAM. Reads
// are XREADGROUP with a short BLOCK (BlockTime), because go-redis cannot
// interrupt a blocked read: the block bounds how long Close takes. Idle
// pending messages are taken over with XAUTOCLAIM; a retry re-takes its own
// message with XCLAIM, whose min-idle doubles as an ownership check.
//
// Trimming is XTRIM MINID (exact) below the lowest, across all groups of the
// stream, of each group's oldest pending id and the successor of its
// last-delivered id, and never inside Retention: an entry that any group has
// not acknowledged is therefore never dropped, whatever the backlog. Exact
// rather than "~" because an approximate MINID removes only whole macro
// nodes (100 entries) and the cost is proportional to what is removed
// anyway; MAXLEN was rejected because no length is "far enough" above a
// backlog during an outage. The key layout assumes one Redis (or a
// Sentinel-managed primary), not Redis Cluster: publish and dead-lettering
// touch two keys atomically.
type RedisBus struct {
	client *redis.Client
	prefix string
	o      Options
	m      *Metrics
	log    *slog.Logger
	subs   subscriptions

	mu sync.Mutex
	// known are the streams this bus published to or consumes; its
	// maintenance trims them. consumed maps stream → groups, for the
	// cleanup of dead consumers.
	known    map[string]bool
	consumed map[string]map[string]bool

	stopMaint context.CancelFunc
	maintDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

var _ Bus = (*RedisBus)(nil)

// NewRedisBus connects to redisURL (redis://[user:pass@]host:port/db) and
// returns a bus that owns the connection.
func NewRedisBus(ctx context.Context, redisURL string, o Options) (*RedisBus, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", errs.Invalid)
	}
	// Short timeouts keep Close and a failing publish prompt while Redis
	// is away; the URL may still set its own.
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 2 * time.Second
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = 2 * time.Second
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = 2 * time.Second
	}
	// CLIENT MAINT_NOTIFICATIONS is a Redis Enterprise/8.x feature; asking a
	// Redis 7 for it only makes noise in the logs.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	client := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("redis %s: %v: %w", opt.Addr, err, errs.Unavailable)
	}
	m, err := NewMetrics(o.Registry)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b := &RedisBus{
		client: client, prefix: o.Prefix, o: o, m: m, log: o.Logger.With("component", "eventbus"),
		known: map[string]bool{}, consumed: map[string]map[string]bool{}, maintDone: make(chan struct{}),
	}
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	b.stopMaint = stop
	go b.maintain(mctx)
	return b, nil
}

func (b *RedisBus) streamKey(stream string) string { return b.prefix + "events:" + stream }
func (b *RedisBus) deadKey(group string) string    { return b.prefix + "events-dead:" + group }

// publishScript appends one entry unless its event id was published within
// the dedup window. The entry goes first and the marker after it: a failure
// between the two can only let a later duplicate through, never lose the
// event. KEYS: stream, marker; ARGV: window in ms (0: no dedup), then the
// entry's field/value pairs.
var publishScript = `
local window = tonumber(ARGV[1])
if window > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  return false
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
if window > 0 then
  redis.call('SET', KEYS[2], id, 'PX', window)
end
return id
`

// Publish appends envs in order, in one round trip. It returns nil only
// when every entry is in Redis (or was already, within the dedup window).
func (b *RedisBus) Publish(ctx context.Context, envs ...Envelope) error {
	if len(envs) == 0 {
		return nil
	}
	window := int64(0)
	if b.o.DedupWindow > 0 {
		window = b.o.DedupWindow.Milliseconds()
	}
	pipe := b.client.Pipeline()
	cmds := make([]*redis.Cmd, len(envs))
	for i, e := range envs {
		if err := e.Validate(); err != nil {
			return err
		}
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.EventID, err)
		}
		key := b.streamKey(e.Stream)
		// EVAL rather than EVALSHA: a restarted Redis has an empty script
		// cache, and a pipeline cannot fall back per command.
		cmds[i] = pipe.Eval(ctx, publishScript, []string{key, key + ":seen:" + e.EventID},
			window, "event_id", e.EventID, "event_type", e.EventType, "envelope", string(raw))
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	var failed []error
	for i, c := range cmds {
		switch err := c.Err(); {
		case err == nil:
			b.m.published.WithLabelValues(envs[i].EventType).Inc()
			b.remember(envs[i].Stream)
		case errors.Is(err, redis.Nil): // already published
		default:
			failed = append(failed, fmt.Errorf("event %s: %w", envs[i].EventID, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("publish %d of %d events failed: %w (%w)", len(failed), len(envs), errors.Join(failed...), errs.Unavailable)
	}
	return nil
}

func (b *RedisBus) remember(stream string) {
	b.mu.Lock()
	b.known[stream] = true
	b.mu.Unlock()
}

// Subscribe starts a consumer of group on streams; see Subscriber.
func (b *RedisBus) Subscribe(ctx context.Context, group string, streams []string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validateSubscription(group, streams, h); err != nil {
		return nil, err
	}
	streams = append([]string(nil), streams...)
	if err := b.subs.reserve(group, streams); err != nil {
		return nil, err
	}
	t := &redisTransport{b: b, group: group, consumer: b.o.Consumer, streams: streams, byKey: map[string]string{}}
	for _, st := range streams {
		k := b.streamKey(st)
		t.keys = append(t.keys, k)
		t.byKey[k] = st
	}
	sub, err := startSubscription(ctx, group, streams, h, subscribeOptions(opts), t, b.o, b.m, b.subs.remove)
	if err != nil {
		b.subs.unreserve(group, streams)
		return nil, err
	}
	b.subs.add(sub)
	b.mu.Lock()
	for _, st := range streams {
		b.known[st] = true
		if b.consumed[st] == nil {
			b.consumed[st] = map[string]bool{}
		}
		b.consumed[st][group] = true
	}
	b.mu.Unlock()
	return sub, nil
}

// DeadLetters lists the group's dead letters, oldest first.
func (b *RedisBus) DeadLetters(ctx context.Context, group string, limit int) ([]DeadLetter, error) {
	msgs, err := b.client.XRangeN(ctx, b.deadKey(group), "-", "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", group, err)
	}
	out := make([]DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		dl := DeadLetter{Group: str(m.Values["group"]), Stream: str(m.Values["stream"]), MessageID: str(m.Values["message_id"]),
			Raw: str(m.Values["envelope"]), Error: str(m.Values["error"])}
		dl.Deliveries, _ = strconv.Atoi(str(m.Values["deliveries"]))
		if ms, ok := idMs(m.ID); ok {
			dl.DeadAt = time.UnixMilli(ms).UTC()
		}
		dl.Envelope, _ = decodeEnvelope(dl.Raw)
		out = append(out, dl)
	}
	return out, nil
}

// Trim drops, from every stream this bus knows, the entries all groups have
// acknowledged that are older than keep; see the type's doc for the bound.
func (b *RedisBus) Trim(ctx context.Context, keep time.Duration) (int64, error) {
	b.mu.Lock()
	streams := make([]string, 0, len(b.known))
	for st := range b.known {
		streams = append(streams, st)
	}
	b.mu.Unlock()
	sort.Strings(streams)
	var total int64
	for _, st := range streams {
		n, err := b.trimStream(ctx, b.streamKey(st), keep)
		total += n
		if err != nil {
			return total, fmt.Errorf("trim %s: %w", st, err)
		}
	}
	return total, nil
}

func (b *RedisBus) trimStream(ctx context.Context, key string, keep time.Duration) (int64, error) {
	groups, err := b.client.XInfoGroups(ctx, key).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, err
	}
	bound := streamID{ms: uint64(max(0, time.Now().Add(-keep).UnixMilli()))}
	// Last-delivered ids first, then pending: an entry only ever moves from
	// undelivered to pending to acked, so the bound stays safe.
	for _, g := range groups {
		if ld, ok := parseID(g.LastDeliveredID); ok {
			bound = minID(bound, ld.next())
		}
	}
	for _, g := range groups {
		p, err := b.client.XPending(ctx, key, g.Name).Result()
		if err != nil {
			return 0, err
		}
		if lower, ok := parseID(p.Lower); ok && p.Count > 0 {
			bound = minID(bound, lower)
		}
	}
	return b.client.XTrimMinID(ctx, key, bound.String()).Result()
}

// maintain trims known streams and forgets long-gone consumers every
// TrimInterval.
func (b *RedisBus) maintain(ctx context.Context) {
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
				b.log.Warn("trimming event streams failed", "err", err)
			}
			if err := b.dropIdleConsumers(ctx); err != nil && ctx.Err() == nil {
				b.log.Warn("removing idle stream consumers failed", "err", err)
			}
		}
	}
}

// dropIdleConsumers deletes consumers that hold nothing and have not been
// seen for ConsumerTTL: each restart with a made-up name leaves one.
func (b *RedisBus) dropIdleConsumers(ctx context.Context) error {
	b.mu.Lock()
	pairs := map[string][]string{}
	for st, groups := range b.consumed {
		for g := range groups {
			pairs[st] = append(pairs[st], g)
		}
	}
	b.mu.Unlock()
	for st, groups := range pairs {
		for _, g := range groups {
			cs, err := b.client.XInfoConsumers(ctx, b.streamKey(st), g).Result()
			if err != nil {
				return err
			}
			for _, c := range cs {
				if c.Pending == 0 && c.Idle > b.o.ConsumerTTL && c.Name != b.o.Consumer {
					if err := b.client.XGroupDelConsumer(ctx, b.streamKey(st), g, c.Name).Err(); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Close stops every subscription, then closes the connection pool.
func (b *RedisBus) Close() error {
	b.closeOnce.Do(func() {
		b.stopMaint()
		err := b.subs.closeAll()
		<-b.maintDone
		b.closeErr = errors.Join(err, b.client.Close())
	})
	return b.closeErr
}

// redisTransport is one subscription's view of its streams.
type redisTransport struct {
	b        *RedisBus
	group    string
	consumer string
	streams  []string
	keys     []string
	byKey    map[string]string
}

func (t *redisTransport) prepare(ctx context.Context) error {
	for _, k := range t.keys {
		err := t.b.client.XGroupCreateMkStream(ctx, k, t.group, "0").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create group %s on %s: %w", t.group, k, err)
		}
	}
	return nil
}

// recreateIfGone puts the groups back when Redis lost them (a restart
// without persistence, a FLUSHDB): without it every read fails forever.
func (t *redisTransport) recreateIfGone(ctx context.Context, err error) {
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		if perr := t.prepare(ctx); perr == nil {
			t.b.log.Warn("consumer group was missing and has been recreated; the stream's earlier entries are gone",
				"consumer_group", t.group)
		}
	}
}

func (t *redisTransport) fetch(ctx context.Context, limit int, wait time.Duration) ([]delivery, error) {
	block := wait.Truncate(time.Millisecond)
	if block <= 0 {
		block = -1 // no BLOCK argument: return at once (BLOCK 0 would wait forever)
	}
	streams := make([]string, 0, 2*len(t.keys))
	streams = append(streams, t.keys...)
	for range t.keys {
		streams = append(streams, ">")
	}
	res, err := t.b.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: t.group, Consumer: t.consumer, Streams: streams, Count: int64(limit), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		t.recreateIfGone(ctx, err)
		return nil, err
	}
	now := time.Now()
	var out []delivery
	for _, xs := range res {
		for _, m := range xs.Messages {
			out = append(out, t.delivery(t.byKey[xs.Stream], m, 1, now))
		}
	}
	return out, nil
}

func (t *redisTransport) delivery(stream string, m redis.XMessage, deliveries int, at time.Time) delivery {
	d := delivery{stream: stream, id: m.ID, raw: str(m.Values["envelope"]), deliveries: deliveries, deliveredAt: at}
	d.env, d.badEnv = decodeEnvelope(d.raw)
	return d
}

// ownIdle is the min-idle that makes XCLAIM fail if anyone touched the
// message after our delivery: its idle time would have been reset.
func ownIdle(d delivery) time.Duration {
	return (time.Since(d.deliveredAt) * 9 / 10).Truncate(time.Millisecond)
}

func (t *redisTransport) redeliver(ctx context.Context, d delivery) (delivery, bool, error) {
	msgs, err := t.b.client.XClaim(ctx, &redis.XClaimArgs{
		Stream: t.b.streamKey(d.stream), Group: t.group, Consumer: t.consumer,
		MinIdle: ownIdle(d), Messages: []string{d.id},
	}).Result()
	if errors.Is(err, redis.Nil) || (err == nil && len(msgs) == 0) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	// No one else touched it (or the claim would have failed), so the
	// broker's count is ours plus this claim.
	return t.delivery(d.stream, msgs[0], d.deliveries+1, time.Now()), true, nil
}

func (t *redisTransport) reclaim(ctx context.Context, limit int) ([]delivery, error) {
	var out []delivery
	for _, k := range t.keys {
		msgs, _, err := t.b.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: k, Group: t.group, Consumer: t.consumer, MinIdle: t.b.o.ClaimMinIdle, Start: "0-0", Count: int64(limit),
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.recreateIfGone(ctx, err)
			return out, err
		}
		if len(msgs) == 0 {
			continue
		}
		// XAUTOCLAIM does not say how often each message was delivered;
		// the dead-letter decision needs it, so ask the pending list.
		pipe := t.b.client.Pipeline()
		counts := make([]*redis.XPendingExtCmd, len(msgs))
		for i, m := range msgs {
			counts[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: k, Group: t.group, Start: m.ID, End: m.ID, Count: 1})
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return out, err
		}
		now := time.Now()
		for i, m := range msgs {
			p, err := counts[i].Result()
			if err != nil || len(p) == 0 || p[0].Consumer != t.consumer {
				continue // acked or re-taken in between: not ours to handle
			}
			out = append(out, t.delivery(t.byKey[k], m, int(p[0].RetryCount), now))
		}
	}
	return out, nil
}

func (t *redisTransport) ack(ctx context.Context, ds []delivery) error {
	if len(ds) == 1 {
		return t.b.client.XAck(ctx, t.b.streamKey(ds[0].stream), t.group, ds[0].id).Err()
	}
	// One XACK per stream, all in one round trip.
	byStream := map[string][]string{}
	for _, d := range ds {
		byStream[d.stream] = append(byStream[d.stream], d.id)
	}
	_, err := t.b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for st, msgIDs := range byStream {
			p.XAck(ctx, t.b.streamKey(st), t.group, msgIDs...)
		}
		return nil
	})
	return err
}

func (t *redisTransport) deadLetter(ctx context.Context, d delivery, cause string) error {
	// MULTI: the copy and the ack happen together or not at all.
	_, err := t.b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: t.b.deadKey(t.group), Values: []any{
			"group", t.group, "stream", d.stream, "message_id", d.id, "event_id", d.env.EventID,
			"event_type", d.env.EventType, "envelope", d.raw, "deliveries", d.deliveries, "error", cause,
		}})
		p.XAck(ctx, t.b.streamKey(d.stream), t.group, d.id)
		return nil
	})
	return err
}

// releaseIdle is the idle time a released message is given: past any
// consumer's ClaimMinIdle, so the next XAUTOCLAIM takes it.
const releaseIdle = 24 * time.Hour

func (t *redisTransport) release(ctx context.Context, ds []delivery) error {
	pipe := t.b.client.Pipeline()
	for _, d := range ds {
		// JUSTID: does not count as a delivery. The min-idle check keeps
		// us from touching a message another consumer took meanwhile.
		pipe.Do(ctx, "XCLAIM", t.b.streamKey(d.stream), t.group, t.consumer, ownIdle(d).Milliseconds(), d.id,
			"IDLE", releaseIdle.Milliseconds(), "JUSTID")
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (t *redisTransport) lag(ctx context.Context) (map[string]time.Duration, error) {
	now := time.Now().UnixMilli()
	out := make(map[string]time.Duration, len(t.keys))
	for _, k := range t.keys {
		groups, err := t.b.client.XInfoGroups(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		var oldest []streamID
		for _, g := range groups {
			if g.Name != t.group {
				continue
			}
			if g.Pending > 0 {
				p, err := t.b.client.XPending(ctx, k, t.group).Result()
				if err != nil {
					return nil, err
				}
				if id, ok := parseID(p.Lower); ok {
					oldest = append(oldest, id)
				}
			}
			next, err := t.b.client.XRangeN(ctx, k, "("+g.LastDeliveredID, "+", 1).Result()
			if err != nil {
				return nil, err
			}
			if len(next) > 0 {
				if id, ok := parseID(next[0].ID); ok {
					oldest = append(oldest, id)
				}
			}
		}
		if len(oldest) > 0 {
			o := oldest[0]
			for _, id := range oldest[1:] {
				o = minID(o, id)
			}
			// Entry ids carry Redis's clock; a skew with ours is clamped.
			out[t.byKey[k]] = time.Duration(max(0, now-int64(o.ms))) * time.Millisecond
		}
	}
	return out, nil
}

// streamID is a Redis stream entry id, <ms>-<seq>.
type streamID struct{ ms, seq uint64 }

func parseID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (id streamID) String() string { return fmt.Sprintf("%d-%d", id.ms, id.seq) }

// next is the smallest id after id.
func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}

func minID(a, b streamID) streamID {
	if b.ms < a.ms || (b.ms == a.ms && b.seq < a.seq) {
		return b
	}
	return a
}

func idMs(s string) (int64, bool) {
	id, ok := parseID(s)
	return int64(id.ms), ok
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}
