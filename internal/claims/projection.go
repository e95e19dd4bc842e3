package claims

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/errs"
	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/inbox"
)

// ProjectionGroup is the consumer group the projector subscribes as; it is
// also its name in the inbox (processed_events.consumer).
const ProjectionGroup = "claims-projection"

// Streams are the bus streams the projector consumes.
var Streams = []string{Name}

// Projector keeps the read model up to date from the bus. Start it with
//
//	bus.Subscribe(ctx, claims.ProjectionGroup, claims.Streams, projector.Handle)
type Projector struct {
	db      *gorm.DB
	dialect db.Dialect
}

// NewProjector returns the projector writing into readDB (migrated with
// Migrate).
func NewProjector(readDB *gorm.DB) *Projector {
	return &Projector{db: readDB, dialect: db.DialectOf(readDB)}
}

// Handle applies one event to the read model, in one transaction with its
// inbox record, so a redelivered event changes nothing. Events of other
// streams, and claim events of a type this version does not know (a newer
// producer), are recorded and ignored. An event older than the row does
// not move the row back (see merge).
func (p *Projector) Handle(ctx context.Context, env events.Envelope) error {
	if env.Stream != Name {
		return nil
	}
	e := StoredEvent{
		EventID: env.EventID, EventType: strings.TrimPrefix(env.EventType, Name+"."), ClaimID: env.AggregateID,
		Version: env.AggregateVersion, OccurredAt: env.OccurredAt.UTC(), CorrelationID: env.CorrelationID,
		Actor: env.Actor, Data: env.Data,
	}
	defer writeLock(p.db)()
	return retryTransient(ctx, func() error {
		return p.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			first, err := inbox.Once(tx, ProjectionGroup, env.EventID)
			if err != nil || !first || !knownEvent(e.EventType) || e.ClaimID == "" {
				return err
			}
			// Lock the row: two consumers of the group handling two events
			// of one claim take turns (SQLite: the write lock does it).
			var rows []claimRow
			if err := tx.Raw(`SELECT * FROM claims WHERE id = ?`+p.forUpdate(), e.ClaimID).Scan(&rows).Error; err != nil {
				return err
			}
			if len(rows) == 0 {
				row := claimRow{ID: e.ClaimID}
				if err := merge(&row, e); err != nil {
					return err
				}
				res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
				if res.Error != nil || res.RowsAffected == 1 {
					return res.Error
				}
				// Another consumer created the row meanwhile (PostgreSQL
				// made us wait for its commit): merge into theirs.
				if err := tx.Raw(`SELECT * FROM claims WHERE id = ?`+p.forUpdate(), e.ClaimID).Scan(&rows).Error; err != nil {
					return err
				}
				if len(rows) != 1 {
					return fmt.Errorf("project %s: claim row %s neither inserted nor found", e.EventID, e.ClaimID)
				}
			}
			row := rows[0]
			if err := merge(&row, e); err != nil {
				return err
			}
			return tx.Select("*").Save(&row).Error
		})
	})
}

func (p *Projector) forUpdate() string {
	if p.dialect == db.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func knownEvent(t string) bool {
	for _, k := range EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

// claimRow is one row of the read model. Creation facts are empty until
// ClaimCreated is applied; such a row is not shown (see readModel).
type claimRow struct {
	ID                string `gorm:"primaryKey"`
	CustomerID        string
	ClaimType         string
	Status            string
	Description       string
	ProductID         string
	OrderID           string
	AgentID           string
	Resolution        string
	Enrichment        *string
	EnrichmentStatus  string
	EnrichmentVersion int64
	CreatedAt         *time.Time `gorm:"autoCreateTime:false"`
	UpdatedAt         *time.Time `gorm:"autoUpdateTime:false"`
	AssignedAt        *time.Time
	StartedAt         *time.Time
	ResolvedAt        *time.Time
	ClosedAt          *time.Time
	ResolveMs         *int64
	Version           int64
}

func (claimRow) TableName() string { return "claims" }

// merge applies one event to a row so that the result does not depend on
// the order events arrive in: each event fills in the fields only it
// writes; the enrichment keeps the one of the highest version; version and
// updated_at follow the highest version seen; and the status is the
// furthest lifecycle step whose event has been seen (the lifecycle is a
// line, so that is the status of the latest one). Applying all of a
// claim's events in any order gives the row that apply gives in order.
func merge(r *claimRow, e StoredEvent) error {
	at := e.OccurredAt.UTC()
	setEnrichment := func(en *Enrichment) error {
		if en == nil || e.Version <= r.EnrichmentVersion {
			return nil
		}
		raw, err := json.Marshal(en)
		if err != nil {
			return err
		}
		s := string(raw)
		r.Enrichment, r.EnrichmentStatus, r.EnrichmentVersion = &s, string(en.Status), e.Version
		return nil
	}
	switch e.EventType {
	case EventClaimCreated:
		var d ClaimCreatedData
		if err := decodeData(e, &d); err != nil {
			return err
		}
		r.CustomerID, r.ClaimType, r.Description, r.ProductID, r.OrderID = d.CustomerID, string(d.ClaimType), d.Description, d.ProductID, d.OrderID
		r.CreatedAt = &at
		if err := setEnrichment(d.Enrichment); err != nil {
			return err
		}
	case EventClaimAssigned:
		var d ClaimAssignedData
		if err := decodeData(e, &d); err != nil {
			return err
		}
		r.AgentID, r.AssignedAt = d.AgentID, &at
	case EventClaimStarted:
		r.StartedAt = &at
	case EventClaimResolved:
		var d ClaimResolvedData
		if err := decodeData(e, &d); err != nil {
			return err
		}
		r.Resolution, r.ResolvedAt = d.Resolution, &at
	case EventClaimClosed:
		r.ClosedAt = &at
	case EventClaimEnriched:
		var d ClaimEnrichedData
		if err := decodeData(e, &d); err != nil {
			return err
		}
		if err := setEnrichment(&d.Enrichment); err != nil {
			return err
		}
	default:
		return nil
	}
	if e.Version > r.Version {
		r.Version, r.UpdatedAt = e.Version, &at
	}
	r.Status = string(furthestStatus(*r))
	r.ResolveMs = nil
	if r.CreatedAt != nil && r.ResolvedAt != nil {
		ms := r.ResolvedAt.Sub(*r.CreatedAt).Milliseconds()
		r.ResolveMs = &ms
	}
	return nil
}

// furthestStatus is the last lifecycle step the row has seen.
func furthestStatus(r claimRow) Status {
	switch {
	case r.ClosedAt != nil:
		return StatusClosed
	case r.ResolvedAt != nil:
		return StatusResolved
	case r.StartedAt != nil:
		return StatusInProgress
	case r.AssignedAt != nil:
		return StatusAssigned
	case r.CreatedAt != nil:
		return StatusCreated
	}
	return ""
}

// claim is the row as the API shows it.
func (r claimRow) claim() (Claim, error) {
	c := Claim{
		ClaimID: r.ID, CustomerID: r.CustomerID, ClaimType: ClaimType(r.ClaimType), Status: Status(r.Status),
		Description: r.Description, ProductID: r.ProductID, OrderID: r.OrderID, AgentID: r.AgentID,
		Resolution: r.Resolution, Version: r.Version,
		AssignedAt: utcPtr(r.AssignedAt), StartedAt: utcPtr(r.StartedAt), ResolvedAt: utcPtr(r.ResolvedAt), ClosedAt: utcPtr(r.ClosedAt),
	}
	if r.CreatedAt != nil {
		c.CreatedAt = r.CreatedAt.UTC()
	}
	if r.UpdatedAt != nil {
		c.UpdatedAt = r.UpdatedAt.UTC()
	}
	if r.Enrichment != nil {
		var en Enrichment
		if err := json.Unmarshal([]byte(*r.Enrichment), &en); err != nil {
			return Claim{}, fmt.Errorf("claim %s: stored enrichment: %w", r.ID, err)
		}
		c.Enrichment = &en
	}
	return c, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	// Claims is how many rows the rebuilt read model holds.
	Claims int `json:"claims"`
	// Events is how many events were read from the store.
	Events int `json:"events"`
	// CaughtUp counts claims reloaded at the swap because the live
	// projector had moved on while the rebuild read the store.
	CaughtUp int `json:"caught_up"`
	// Took is how long the rebuild ran.
	Took time.Duration `json:"took"`
}

// rebuildTable is the staging table a rebuild fills before the swap.
const rebuildTable = "claims_rebuild"

// Rebuild recomputes the read model from the event store and replaces the
// live one (`pos claims rebuild`). It runs beside a live projector:
//
//  1. it reads the whole store (without holding any lock) and folds each
//     claim's events, in version order, into a row of a fresh staging
//     table;
//  2. in one transaction that keeps the projector out (PostgreSQL: an
//     EXCLUSIVE table lock, which still lets readers in; SQLite: the write
//     lock), it reloads from the store every claim whose live row is ahead
//     of its staged one (the projector applied events the read in 1 did not
//     see), then replaces the live rows with the staged ones.
//
// Events appended after step 2 reach the new rows through the projector as
// usual; an event it already applied (inbox) is in the store and thus in
// the new rows too. The inbox is kept. Run one rebuild at a time: they
// share the staging table.
func Rebuild(ctx context.Context, store EventStore, readDB *gorm.DB) (RebuildReport, error) {
	start := time.Now()
	var rep RebuildReport
	rows, n, err := foldStore(ctx, store)
	if err != nil {
		return rep, err
	}
	rep.Events = n
	gdb := readDB.WithContext(ctx)
	unlock := writeLock(readDB)
	defer unlock()
	if err := gdb.Exec(`DROP TABLE IF EXISTS ` + rebuildTable).Error; err != nil {
		return rep, fmt.Errorf("rebuild: %w", storeErr(err))
	}
	// Same columns, same order, as the live table: the swap copies with *.
	if err := gdb.Exec(`CREATE TABLE ` + rebuildTable + ` AS SELECT * FROM claims WHERE 1 = 0`).Error; err != nil {
		return rep, fmt.Errorf("rebuild: %w", storeErr(err))
	}
	defer gdb.Exec(`DROP TABLE IF EXISTS ` + rebuildTable)
	staged := make([]claimRow, 0, len(rows))
	for _, r := range rows {
		staged = append(staged, *r)
	}
	if len(staged) > 0 {
		if err := gdb.Table(rebuildTable).Select("*").CreateInBatches(staged, 200).Error; err != nil {
			return rep, fmt.Errorf("rebuild: stage rows: %w", storeErr(err))
		}
	}
	dialect := db.DialectOf(readDB)
	err = gdb.Transaction(func(tx *gorm.DB) error {
		if dialect == db.Postgres {
			if err := tx.Exec(`LOCK TABLE claims IN EXCLUSIVE MODE`).Error; err != nil {
				return err
			}
		}
		var live []struct {
			ID      string
			Version int64
		}
		if err := tx.Raw(`SELECT id, version FROM claims`).Scan(&live).Error; err != nil {
			return err
		}
		for _, l := range live {
			if st, ok := rows[l.ID]; ok && st.Version >= l.Version {
				continue
			}
			evs, err := store.Load(ctx, l.ID, 0)
			if err != nil {
				return err
			}
			row, err := foldClaim(l.ID, evs)
			if err != nil {
				return err
			}
			if err := tx.Exec(`DELETE FROM `+rebuildTable+` WHERE id = ?`, l.ID).Error; err != nil {
				return err
			}
			if row.Version > 0 {
				if err := tx.Table(rebuildTable).Select("*").Create(&row).Error; err != nil {
					return err
				}
			}
			rep.CaughtUp++
		}
		if err := tx.Exec(`DELETE FROM claims`).Error; err != nil {
			return err
		}
		res := tx.Exec(`INSERT INTO claims SELECT * FROM ` + rebuildTable)
		if res.Error != nil {
			return res.Error
		}
		rep.Claims = int(res.RowsAffected)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("rebuild: swap: %w", storeErr(err))
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// foldStore reads every event of the store and folds each claim's into a
// row. ReadAll goes by position, and under concurrency a late commit can
// hide an earlier version of a claim behind a later one; a claim whose
// versions do not run 1, 2, 3… is therefore reloaded whole with Load, which
// sees every committed version of it.
func foldStore(ctx context.Context, store EventStore) (map[string]*claimRow, int, error) {
	byClaim := map[string][]StoredEvent{}
	var after int64
	n := 0
	for {
		batch, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			return nil, n, err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			byClaim[e.ClaimID] = append(byClaim[e.ClaimID], e)
		}
		n += len(batch)
		after = batch[len(batch)-1].Position
	}
	rows := make(map[string]*claimRow, len(byClaim))
	for id, evs := range byClaim {
		sort.Slice(evs, func(i, j int) bool { return evs[i].Version < evs[j].Version })
		if !contiguous(evs) {
			var err error
			if evs, err = store.Load(ctx, id, 0); err != nil {
				return nil, n, err
			}
		}
		row, err := foldClaim(id, evs)
		if err != nil {
			return nil, n, err
		}
		rows[id] = &row
	}
	return rows, n, nil
}

func contiguous(evs []StoredEvent) bool {
	for i, e := range evs {
		if e.Version != int64(i)+1 {
			return false
		}
	}
	return true
}

// foldClaim is the row the projector ends with after all of evs. The
// events are checked with apply first: a rebuild must not turn a store
// that breaks the lifecycle into a plausible read model.
func foldClaim(id string, evs []StoredEvent) (claimRow, error) {
	if _, err := replay(evs); err != nil {
		return claimRow{}, fmt.Errorf("rebuild claim %s: %w", id, err)
	}
	row := claimRow{ID: id}
	for _, e := range evs {
		if err := merge(&row, e); err != nil {
			return claimRow{}, err
		}
	}
	return row, nil
}

// Difference is one claim on which the read model and the event store
// disagree.
type Difference struct {
	ClaimID string `json:"claim_id"`
	// Store and ReadModel are the claim as replayed from the store and as
	// the read model shows it; nil where it is missing.
	Store     *Claim `json:"store,omitempty"`
	ReadModel *Claim `json:"read_model,omitempty"`
}

// Compare replays every claim of the store and compares it with the read
// model, returning the claims that differ (`pos claims rebuild --check`).
// On a live system claims the projector has not reached yet show up too;
// it is exact once the projector has caught up.
func Compare(ctx context.Context, store EventStore, readDB *gorm.DB) ([]Difference, error) {
	byClaim := map[string]bool{}
	var after int64
	for {
		batch, err := store.ReadAll(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			byClaim[e.ClaimID] = true
		}
		after = batch[len(batch)-1].Position
	}
	var rows []claimRow
	if err := readDB.WithContext(ctx).Raw(`SELECT * FROM claims`).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("compare: %w", storeErr(err))
	}
	live := make(map[string]claimRow, len(rows))
	for _, r := range rows {
		live[r.ID] = r
		byClaim[r.ID] = true
	}
	ids := make([]string, 0, len(byClaim))
	for id := range byClaim {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Difference
	for _, id := range ids {
		d := Difference{ClaimID: id}
		evs, err := store.Load(ctx, id, 0)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			c, err := replay(evs)
			if err != nil {
				return nil, fmt.Errorf("compare claim %s: %w", id, err)
			}
			d.Store = &c
		}
		if r, ok := live[id]; ok {
			c, err := r.claim()
			if err != nil {
				return nil, err
			}
			d.ReadModel = &c
		}
		if !sameClaim(d.Store, d.ReadModel) {
			out = append(out, d)
		}
	}
	return out, nil
}

// sameClaim compares two claims by their JSON form: times compare by
// instant, pointers by what they point to.
func sameClaim(a, b *Claim) bool {
	if a == nil || b == nil {
		return a == b
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// errNotVisible is the read model's answer for a claim it does not show.
func errNotVisible(id string) error { return fmt.Errorf("claim %s: %w", id, errs.NotFound) }
