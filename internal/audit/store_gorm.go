package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/page"
)

// entryRow is the audit_log table; domain types carry no gorm tags.
type entryRow struct {
	EventID          string `gorm:"primaryKey"`
	EventType        string
	EventName        string
	Stream           string
	AggregateID      string
	AggregateVersion int64
	Actor            string
	CorrelationID    string
	OccurredAt       time.Time
	AuditedAt        time.Time
	LatencyMs        int64
	Data             string
}

// TableName names the table for gorm.
func (entryRow) TableName() string { return "audit_log" }

func (r entryRow) domain() Entry {
	return Entry{
		EventID: r.EventID, EventType: r.EventType, Stream: r.Stream, AggregateID: r.AggregateID,
		AggregateVersion: r.AggregateVersion, Actor: r.Actor, CorrelationID: r.CorrelationID,
		OccurredAt: r.OccurredAt.UTC(), AuditedAt: r.AuditedAt.UTC(), LatencyMs: r.LatencyMs,
		Data: json.RawMessage(r.Data),
	}
}

type store struct{ db *gorm.DB }

// insert appends r unless its event is already in the trail; it reports
// whether it did. The one statement is the transaction.
func (s *store) insert(ctx context.Context, r entryRow) (bool, error) {
	res := s.db.WithContext(ctx).Exec(insertEntries+entryValues+onNewEntry, r.values()...)
	if res.Error != nil {
		return false, fmt.Errorf("audit %s: %w", r.EventID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

const (
	insertEntries = `INSERT INTO audit_log (event_id, event_type, event_name, stream, aggregate_id,
		aggregate_version, actor, correlation_id, occurred_at, audited_at, latency_ms, data) VALUES `
	entryValues = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	onNewEntry  = ` ON CONFLICT (event_id) DO NOTHING`
	// entriesPerInsert keeps one statement's parameters (12 a row) under
	// both engines' limits.
	entriesPerInsert = 500
)

func (r entryRow) values() []any {
	return []any{r.EventID, r.EventType, r.EventName, r.Stream, r.AggregateID, r.AggregateVersion, r.Actor, r.CorrelationID,
		r.OccurredAt, r.AuditedAt, r.LatencyMs, r.Data}
}

// insertEach appends the rows whose events are not in the trail yet, one
// statement per 500 rows (all in one transaction when there are more),
// and returns the event ids it appended.
func (s *store) insertEach(ctx context.Context, rows []entryRow) (map[string]bool, error) {
	first := make(map[string]bool, len(rows))
	write := func(tx *gorm.DB) error {
		for start := 0; start < len(rows); start += entriesPerInsert {
			chunk := rows[start:min(start+entriesPerInsert, len(rows))]
			args := make([]any, 0, 12*len(chunk))
			for _, r := range chunk {
				args = append(args, r.values()...)
			}
			var ids []string
			q := insertEntries + db.Tuples(entryValues, len(chunk)) + onNewEntry + ` RETURNING event_id`
			if err := tx.Raw(q, args...).Scan(&ids).Error; err != nil {
				return fmt.Errorf("audit %d events: %w", len(chunk), err)
			}
			for _, id := range ids {
				first[id] = true
			}
		}
		return nil
	}
	if len(rows) <= entriesPerInsert {
		return first, write(s.db.WithContext(ctx))
	}
	return first, s.db.WithContext(ctx).Transaction(write)
}

func (s *store) list(ctx context.Context, f Filter) (page.Result[Entry], error) {
	q := s.db.WithContext(ctx).Model(&entryRow{})
	if f.AggregateID != "" {
		q = q.Where("aggregate_id = ?", f.AggregateID)
	}
	if f.EventType != "" {
		if strings.Contains(f.EventType, ".") {
			q = q.Where("event_type = ?", f.EventType)
		} else {
			q = q.Where("event_name = ?", f.EventType)
		}
	}
	if f.CorrelationID != "" {
		q = q.Where("correlation_id = ?", f.CorrelationID)
	}
	if f.Stream != "" {
		q = q.Where("stream = ?", f.Stream)
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if !f.From.IsZero() {
		q = q.Where("occurred_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		q = q.Where("occurred_at < ?", f.To)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Entry]{}, fmt.Errorf("count audit entries: %w", err)
	}
	var rows []entryRow
	if total > 0 {
		order := "occurred_at, event_id"
		if f.Newest {
			order = "occurred_at DESC, event_id DESC"
		}
		if err := q.Order(order).Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
			return page.Result[Entry]{}, fmt.Errorf("list audit entries: %w", err)
		}
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return page.Result[Entry]{Items: out, Total: total}, nil
}

func (s *store) stats(ctx context.Context, since time.Time) (Stats, error) {
	gdb := s.db.WithContext(ctx)
	st := Stats{ByStream: map[string]int64{}, ByEventType: map[string]int64{}}
	for _, g := range []struct {
		column string
		into   map[string]int64
	}{{"stream", st.ByStream}, {"event_type", st.ByEventType}} {
		var rows []struct {
			Grp string
			N   int64
		}
		// The column names are the constants above, never input.
		if err := gdb.Raw(`SELECT ` + g.column + ` AS grp, COUNT(*) AS n FROM audit_log GROUP BY ` + g.column).Scan(&rows).Error; err != nil {
			return Stats{}, fmt.Errorf("audit stats by %s: %w", g.column, err)
		}
		for _, r := range rows {
			g.into[r.Grp] = r.N
		}
	}
	for _, n := range st.ByStream {
		st.Total += n
	}

	lat := Latency{Since: since}
	var agg struct {
		N       int64
		Longest *int64
	}
	if err := gdb.Raw(`SELECT COUNT(*) AS n, MAX(latency_ms) AS longest FROM audit_log WHERE audited_at >= ?`, since).Scan(&agg).Error; err != nil {
		return Stats{}, fmt.Errorf("audit latency: %w", err)
	}
	lat.Count = agg.N
	if agg.Longest != nil {
		lat.MaxMs = *agg.Longest
	}
	// Nearest rank: the p-th percentile is the ceil(p·n)-th smallest value.
	// Two indexed lookups instead of an engine-specific percentile function.
	rank := func(p int64) (int64, error) {
		if lat.Count == 0 {
			return 0, nil
		}
		k := (p*lat.Count + 99) / 100
		var v []int64
		err := gdb.Raw(`SELECT latency_ms FROM audit_log WHERE audited_at >= ? ORDER BY latency_ms LIMIT 1 OFFSET ?`, since, k-1).Scan(&v).Error
		if err != nil || len(v) == 0 {
			return 0, err
		}
		return v[0], nil
	}
	var err error
	if lat.P50Ms, err = rank(50); err != nil {
		return Stats{}, fmt.Errorf("audit latency p50: %w", err)
	}
	if lat.P95Ms, err = rank(95); err != nil {
		return Stats{}, fmt.Errorf("audit latency p95: %w", err)
	}
	st.Latency = lat
	return st, nil
}
