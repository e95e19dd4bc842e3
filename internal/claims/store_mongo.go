package claims

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/retailco/pos/internal/platform/errs"
)

// MongoOptions tune the MongoDB event store; zero values pick the defaults.
type MongoOptions struct {
	// GapGrace is how long a position must stay missing before the relay
	// checks whether it is a hole (a newer position exists) and fills it
	// with a tombstone (default 5s). Appends never leave holes (positions
	// are dense, see MongoEventStore); this is the safety net for one made
	// outside the store (a document removed by hand, a partial restore),
	// so that it cannot stall the relay for ever. The tombstone cannot hide
	// a late event: the unique position index lets only one of them have
	// the position. While the relay is idle the check costs one query per
	// GapGrace.
	GapGrace time.Duration
	// Now is the relay's clock for gap ages (default time.Now).
	Now func() time.Time
}

// The collections, in the database the store is given.
const (
	mongoEvents = "claim_events" // one document per event (and per tombstone)
	mongoRelay  = "claim_relay"  // {_id: "relay", position}: the relay checkpoint
	// gapAggregate owns the tombstones that fill positions found missing;
	// no claim id can look like it.
	gapAggregate = "~gap"
)

// MongoEventStore is the event store on MongoDB (or FerretDB): one
// document per event, a unique index on (aggregate_id, version) for
// optimistic concurrency, a unique index on position that doubles as the
// position sequence, and plain indexes on event_type and occurred_at for
// inspection. It relies on no multi-document transaction, no change stream
// and no atomic counter (FerretDB's findAndModify with $inc loses updates
// under concurrency, so a counter document cannot hand out positions).
//
// Positions: an event is inserted at the highest stored position plus
// one, and the unique index refuses it if someone took that position
// first, in which case it retries on the new maximum. A writer aims at
// max+1 only once max exists, so positions are dense and become visible in
// position order: the relay, reading past its checkpoint, cannot pass over
// a position that is filled later. Writers of one process take turns so
// they do not collide with each other; writers in other processes collide
// on the index and retry.
//
// An Append of several events writes them one document at a time in
// version order; the first one's (aggregate_id, version) is what two
// writers race on. Without transactions, a failure in the middle leaves a
// prefix of the batch: every prefix is a state the claim passes through
// anyway, and the claims commands append one event each, so it never
// arises in this context.
type MongoEventStore struct {
	client *mongo.Client
	owned  bool
	events *mongo.Collection
	relay  *mongo.Collection
	o      MongoOptions
	sig    signal

	// posMu makes this process's writers take turns; nextPos is the
	// position the next insert aims at (0: read it from the store).
	posMu   sync.Mutex
	nextPos int64

	// gapMu guards gaps: when the relay first saw each missing position.
	gapMu sync.Mutex
	gaps  map[int64]time.Time

	// afterAllocate, when set, runs between choosing a position and
	// inserting the event there; tests stall or fail appends with it.
	afterAllocate func(position int64) error
}

var _ EventStore = (*MongoEventStore)(nil)

// OpenMongoEventStore connects to url (POS_MONGO_URL) and returns the store
// in database dbName; Close disconnects.
func OpenMongoEventStore(ctx context.Context, url, dbName string, o MongoOptions) (*MongoEventStore, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(url).SetTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("mongodb url: %v: %w", err, errs.Invalid)
	}
	s, err := NewMongoEventStore(ctx, client, dbName, o)
	if err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	s.owned = true
	return s, nil
}

// NewMongoEventStore returns the store in database dbName of client,
// creating its indexes; the caller keeps ownership of client.
func NewMongoEventStore(ctx context.Context, client *mongo.Client, dbName string, o MongoOptions) (*MongoEventStore, error) {
	if o.GapGrace == 0 {
		o.GapGrace = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.GapGrace < 0 || dbName == "" {
		return nil, fmt.Errorf("mongo event store needs a database name and a positive gap grace: %w", errs.Invalid)
	}
	d := client.Database(dbName)
	s := &MongoEventStore{client: client, events: d.Collection(mongoEvents), relay: d.Collection(mongoRelay), o: o, gaps: map[int64]time.Time{}}
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	want := []mongo.IndexModel{
		{Keys: bson.D{{Key: "aggregate_id", Value: 1}, {Key: "version", Value: 1}}, Options: options.Index().SetName("claim_events_version").SetUnique(true)},
		{Keys: bson.D{{Key: "position", Value: 1}}, Options: options.Index().SetName("claim_events_position").SetUnique(true)},
		{Keys: bson.D{{Key: "event_id", Value: 1}}, Options: options.Index().SetName("claim_events_event_id").SetUnique(true)},
		{Keys: bson.D{{Key: "event_type", Value: 1}}, Options: options.Index().SetName("claim_events_type")},
		{Keys: bson.D{{Key: "occurred_at", Value: 1}}, Options: options.Index().SetName("claim_events_time")},
	}
	// Only the missing ones: MongoDB takes an existing index as a no-op,
	// but FerretDB 1.x fails the whole request (every process start after
	// the first would).
	have, err := s.events.Indexes().ListSpecifications(ictx)
	if err != nil {
		return nil, fmt.Errorf("list claim event indexes: %w", mongoErr(err))
	}
	existing := map[string]bool{}
	for _, h := range have {
		existing[h.Name] = true
	}
	var missing []mongo.IndexModel
	for _, m := range want {
		var o options.IndexOptions
		for _, set := range m.Options.List() {
			_ = set(&o)
		}
		if o.Name == nil || !existing[*o.Name] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		if _, err := s.events.Indexes().CreateMany(ictx, missing); err != nil {
			return nil, fmt.Errorf("create claim event indexes: %w", mongoErr(err))
		}
	}
	return s, nil
}

// Close disconnects the client when the store opened it.
func (s *MongoEventStore) Close(ctx context.Context) error {
	if !s.owned {
		return nil
	}
	return s.client.Disconnect(ctx)
}

// mongoEvent is one document of claim_events. Data is kept as the JSON
// text it was appended with, so what is published is byte for byte what
// was stored.
type mongoEvent struct {
	ID            string    `bson:"_id"` // docID(aggregate_id, version)
	EventID       string    `bson:"event_id"`
	AggregateID   string    `bson:"aggregate_id"`
	Version       int64     `bson:"version"`
	Position      int64     `bson:"position"`
	EventType     string    `bson:"event_type"`
	OccurredAt    time.Time `bson:"occurred_at"`
	CorrelationID string    `bson:"correlation_id"`
	Actor         string    `bson:"actor"`
	Data          string    `bson:"data"`
}

func (d mongoEvent) event() StoredEvent {
	return StoredEvent{
		EventID: d.EventID, EventType: d.EventType, ClaimID: d.AggregateID, Version: d.Version, Position: d.Position,
		OccurredAt: d.OccurredAt.UTC(), CorrelationID: d.CorrelationID, Actor: d.Actor, Data: []byte(d.Data),
	}
}

// Append implements EventStore.
func (s *MongoEventStore) Append(ctx context.Context, aggregateID string, expectedVersion int64, evs []StoredEvent) ([]StoredEvent, error) {
	if err := checkAppend(aggregateID, expectedVersion, evs); err != nil {
		return nil, err
	}
	// A caller that expects a version the claim never reached is refused
	// here; one whose version was taken meanwhile, by the _id of its first
	// event (see insert).
	if expectedVersion > 0 {
		if _, found, err := s.byID(ctx, aggregateID, expectedVersion); err != nil {
			return nil, err
		} else if !found {
			return alreadyAppended(ctx, s, aggregateID, expectedVersion, evs)
		}
	}
	out := make([]StoredEvent, len(evs))
	for i, e := range evs {
		stored, err := s.insert(ctx, aggregateID, e)
		if err != nil {
			if i > 0 {
				s.sig.Notify() // the prefix that made it is there to relay
			}
			return nil, err
		}
		out[i] = stored
	}
	s.sig.Notify()
	return out, nil
}

// insert writes one event at the next position (see MongoEventStore).
func (s *MongoEventStore) insert(ctx context.Context, aggregateID string, e StoredEvent) (StoredEvent, error) {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.nextPos == 0 {
			last, err := s.lastPosition(ctx)
			if err != nil {
				return StoredEvent{}, err
			}
			s.nextPos = last + 1
		}
		pos := s.nextPos
		if s.afterAllocate != nil {
			if err := s.afterAllocate(pos); err != nil {
				return StoredEvent{}, err
			}
		}
		doc := mongoEvent{
			ID: docID(aggregateID, e.Version), EventID: e.EventID, AggregateID: aggregateID, Version: e.Version, Position: pos, EventType: e.EventType,
			OccurredAt: e.OccurredAt.UTC(), CorrelationID: e.CorrelationID, Actor: e.Actor, Data: string(e.Data),
		}
		_, err := s.events.InsertOne(ctx, doc)
		if err == nil {
			s.nextPos = pos + 1
			return doc.event(), nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			s.nextPos = 0 // unknown outcome: read the maximum again
			return StoredEvent{}, fmt.Errorf("append to claim %s: %w", aggregateID, mongoErr(err))
		}
		// Which key clashed? The version (a concurrent command, or our own
		// earlier attempt that did succeed), the event id, or the position
		// (another process appended meanwhile: try the new maximum).
		got, found, err := s.byID(ctx, aggregateID, e.Version)
		switch {
		case err != nil:
			return StoredEvent{}, err
		case found && got.EventID == e.EventID:
			return got.event(), nil
		case found:
			return StoredEvent{}, fmt.Errorf("claim %s version %d was taken by a concurrent command: %w", aggregateID, e.Version, errs.Conflict)
		}
		if n, err := s.events.CountDocuments(ctx, bson.D{{Key: "event_id", Value: e.EventID}}); err != nil {
			return StoredEvent{}, fmt.Errorf("append to claim %s: %w", aggregateID, mongoErr(err))
		} else if n > 0 {
			return StoredEvent{}, fmt.Errorf("event id %s is already used by another claim event: %w", e.EventID, errs.Conflict)
		}
		s.nextPos = 0
		if attempt >= 100 {
			return StoredEvent{}, fmt.Errorf("append to claim %s: no free position after %d attempts: %w", aggregateID, attempt+1, errs.Unavailable)
		}
	}
}

// lastPosition is the highest position stored (0: none).
func (s *MongoEventStore) lastPosition(ctx context.Context) (int64, error) {
	var d mongoEvent
	err := s.events.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "position", Value: -1}})).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read the last event position: %w", mongoErr(err))
	}
	return d.Position, nil
}

// docID is an event document's _id: the claim and the version. The
// primary key alone then keeps two events off one version of a claim, and
// the checks of Append are primary-key lookups.
func docID(aggregateID string, version int64) string {
	return aggregateID + "/" + strconv.FormatInt(version, 10)
}

// byID reads the claim's event at version, if any.
func (s *MongoEventStore) byID(ctx context.Context, aggregateID string, version int64) (mongoEvent, bool, error) {
	var d mongoEvent
	err := s.events.FindOne(ctx, bson.D{{Key: "_id", Value: docID(aggregateID, version)}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return d, false, nil
	case err != nil:
		return d, false, fmt.Errorf("read claim %s version %d: %w", aggregateID, version, mongoErr(err))
	}
	return d, true, nil
}

// Load implements EventStore with one query (the (aggregate_id, version)
// index answers it on MongoDB).
func (s *MongoEventStore) Load(ctx context.Context, aggregateID string, afterVersion int64) ([]StoredEvent, error) {
	if aggregateID == gapAggregate {
		return nil, nil
	}
	return s.find(ctx, bson.D{{Key: "aggregate_id", Value: aggregateID}, {Key: "version", Value: bson.D{{Key: "$gt", Value: afterVersion}}}},
		options.Find().SetSort(bson.D{{Key: "version", Value: 1}}))
}

// ReadAll implements EventStore; tombstones are not events and stay out.
func (s *MongoEventStore) ReadAll(ctx context.Context, afterPosition int64, limit int) ([]StoredEvent, error) {
	return s.find(ctx, bson.D{{Key: "position", Value: bson.D{{Key: "$gt", Value: afterPosition}}}, {Key: "aggregate_id", Value: bson.D{{Key: "$ne", Value: gapAggregate}}}},
		options.Find().SetSort(bson.D{{Key: "position", Value: 1}}).SetLimit(int64(limit)))
}

func (s *MongoEventStore) find(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]StoredEvent, error) {
	docs, err := s.findDocs(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	out := make([]StoredEvent, len(docs))
	for i, d := range docs {
		out[i] = d.event()
	}
	return out, nil
}

func (s *MongoEventStore) findDocs(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]mongoEvent, error) {
	cur, err := s.events.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("read claim events: %w", mongoErr(err))
	}
	var docs []mongoEvent
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read claim events: %w", mongoErr(err))
	}
	return docs, nil
}

// checkpoint is the last position the relay has dealt with: every
// position up to it is published or a tombstone.
func (s *MongoEventStore) checkpoint(ctx context.Context) (int64, error) {
	var d struct {
		Position int64 `bson:"position"`
	}
	err := s.relay.FindOne(ctx, bson.D{{Key: "_id", Value: "relay"}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read relay checkpoint: %w", mongoErr(err))
	}
	return d.Position, nil
}

// RelayBatch implements EventStore: the positions after the checkpoint,
// one by one, for as long as they are there. Positions are dense, so the
// run ends at the newest event; each is read by equality on the unique
// position index (a range query would make FerretDB scan the collection).
// The relay never steps over a missing position except to fill a hole
// made outside the store (see MongoOptions.GapGrace and closeGap).
func (s *MongoEventStore) RelayBatch(ctx context.Context, limit int, publish func(context.Context, []StoredEvent) error) (int, error) {
	cp, err := s.checkpoint(ctx)
	if err != nil {
		return 0, err
	}
	var (
		out     []StoredEvent
		through = cp
		last    int64 // the newest position, once a hole made us look
	)
	for i := 0; i < limit; i++ {
		pos := through + 1
		var d mongoEvent
		err := s.events.FindOne(ctx, bson.D{{Key: "position", Value: pos}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			closed, newest, err := s.closeGap(ctx, pos, last)
			if err != nil {
				return 0, err
			}
			last = newest
			if !closed {
				break // the end of the log (or a hole still in its grace)
			}
			through = pos
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read event at position %d: %w", pos, mongoErr(err))
		}
		if d.AggregateID != gapAggregate {
			out = append(out, d.event())
		}
		through = pos
	}
	if len(out) > 0 {
		if err := publish(ctx, out); err != nil {
			return 0, err
		}
	}
	if through > cp {
		// Only after the publish; $max so that a slower second relay can
		// never move the checkpoint back.
		_, err := s.relay.UpdateOne(ctx, bson.D{{Key: "_id", Value: "relay"}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "position", Value: through}}}}, options.UpdateOne().SetUpsert(true))
		if err != nil {
			return 0, fmt.Errorf("advance relay checkpoint: %w", mongoErr(err))
		}
		s.forgetGaps(through)
	}
	return len(out), nil
}

// closeGap deals with the missing position pos. Usually it is the end of
// the log: the next position nobody has taken yet. It is a hole only if a
// newer position exists, and since writers aim at the newest position plus
// one, a hole below the newest position is never an append in flight: it
// was made outside the store. The relay looks for that (one query that
// scans on FerretDB) once pos has been missing for GapGrace, and fills a
// hole with a tombstone; the unique position index keeps an event and a
// tombstone from both having it. last is the newest position already read
// this round (0: unknown); closeGap returns it, possibly refreshed.
func (s *MongoEventStore) closeGap(ctx context.Context, pos, last int64) (closed bool, newest int64, err error) {
	if pos > last {
		now := s.o.Now()
		s.gapMu.Lock()
		first, seen := s.gaps[pos]
		if !seen {
			s.gaps[pos] = now
		}
		s.gapMu.Unlock()
		if !seen || now.Sub(first) < s.o.GapGrace {
			return false, last, nil
		}
		if last, err = s.lastPosition(ctx); err != nil {
			return false, last, err
		}
		if last < pos {
			// The end of the log: look again after another grace.
			s.gapMu.Lock()
			s.gaps[pos] = now
			s.gapMu.Unlock()
			return false, last, nil
		}
	}
	tomb := mongoEvent{
		ID: docID(gapAggregate, pos), EventID: docID(gapAggregate, pos), AggregateID: gapAggregate, Version: pos, Position: pos,
		EventType: gapAggregate, OccurredAt: s.o.Now().UTC(), Data: "null",
	}
	_, err = s.events.InsertOne(ctx, tomb)
	switch {
	case err == nil:
		return true, last, nil
	case mongo.IsDuplicateKeyError(err):
		return false, last, nil // an event took it after all: the next round reads it
	}
	return false, last, fmt.Errorf("close gap at position %d: %w", pos, mongoErr(err))
}

// forgetGaps drops the gap ages at or below the checkpoint.
func (s *MongoEventStore) forgetGaps(through int64) {
	s.gapMu.Lock()
	defer s.gapMu.Unlock()
	for p := range s.gaps {
		if p <= through {
			delete(s.gaps, p)
		}
	}
}

// Appended implements EventStore.
func (s *MongoEventStore) Appended() <-chan struct{} { return s.sig.C() }

// Ping implements EventStore.
func (s *MongoEventStore) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return mongoErr(err)
	}
	return nil
}

// mongoErr gives a driver failure its kind, as storeErr does for SQL.
func mongoErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errs.KindOf(err) != errs.Internal:
		return err
	case mongo.IsTimeout(err), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %v", errs.Timeout, err)
	}
	return fmt.Errorf("%w: %v", errs.Unavailable, err)
}
