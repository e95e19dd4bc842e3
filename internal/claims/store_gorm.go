package claims

import (
	"context"
	"database/sql"
	"fmt"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/db"
	"github.com/retailco/pos/internal/platform/page"
)

// readModel answers the queries from the claims table. A row whose
// ClaimCreated the projector has not applied yet (it handled a later event
// first) is not shown: it lacks the claim's owner and content.
type readModel struct{ db *gorm.DB }

const visible = `created_at IS NOT NULL`

func (m *readModel) get(ctx context.Context, id string) (Claim, error) {
	var rows []claimRow
	if err := m.db.WithContext(ctx).Raw(`SELECT * FROM claims WHERE id = ? AND `+visible, id).Scan(&rows).Error; err != nil {
		return Claim{}, fmt.Errorf("get claim %s: %w", id, storeErr(err))
	}
	if len(rows) == 0 {
		return Claim{}, errNotVisible(id)
	}
	return rows[0].claim()
}

func (m *readModel) list(ctx context.Context, f Filter) (page.Result[Claim], error) {
	q := m.db.WithContext(ctx).Model(&claimRow{}).Where(visible)
	if f.Status != "" {
		q = q.Where("status = ?", string(f.Status))
	}
	if f.CustomerID != "" {
		q = q.Where("customer_id = ?", f.CustomerID)
	}
	if f.AgentID != "" {
		q = q.Where("agent_id = ?", f.AgentID)
	}
	if f.ClaimType != "" {
		q = q.Where("claim_type = ?", string(f.ClaimType))
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return page.Result[Claim]{}, fmt.Errorf("count claims: %w", storeErr(err))
	}
	var rows []claimRow
	// Newest first; the id breaks ties so pages never overlap.
	if err := q.Order("created_at DESC, id DESC").Offset(f.Page.Offset()).Limit(f.Page.Limit()).Find(&rows).Error; err != nil {
		return page.Result[Claim]{}, fmt.Errorf("list claims: %w", storeErr(err))
	}
	out := make([]Claim, 0, len(rows))
	for _, r := range rows {
		c, err := r.claim()
		if err != nil {
			return page.Result[Claim]{}, err
		}
		out = append(out, c)
	}
	return page.Result[Claim]{Items: out, Total: total}, nil
}

func (m *readModel) stats(ctx context.Context, q StatsQuery) (Stats, error) {
	gdb := m.db.WithContext(ctx)
	st := Stats{ByStatus: map[Status]int64{}, ByType: map[ClaimType]int64{}, PerAgent: []AgentStats{}, TopCustomers: []CustomerCount{}}
	for _, s := range Statuses {
		st.ByStatus[s] = 0
	}
	for _, t := range ClaimTypes {
		st.ByType[t] = 0
	}
	var byStatus []struct {
		Status string
		N      int64
	}
	if err := gdb.Raw(`SELECT status, COUNT(*) AS n FROM claims WHERE ` + visible + ` GROUP BY status`).Scan(&byStatus).Error; err != nil {
		return Stats{}, fmt.Errorf("claim stats: %w", storeErr(err))
	}
	for _, r := range byStatus {
		st.ByStatus[Status(r.Status)] = r.N
		st.Total += r.N
	}
	var byType []struct {
		ClaimType string
		N         int64
	}
	if err := gdb.Raw(`SELECT claim_type, COUNT(*) AS n FROM claims WHERE ` + visible + ` GROUP BY claim_type`).Scan(&byType).Error; err != nil {
		return Stats{}, fmt.Errorf("claim stats: %w", storeErr(err))
	}
	for _, r := range byType {
		st.ByType[ClaimType(r.ClaimType)] = r.N
	}
	var perAgent []struct {
		AgentID string
		Status  string
		N       int64
	}
	if err := gdb.Raw(`SELECT agent_id, status, COUNT(*) AS n FROM claims WHERE ` + visible + ` AND agent_id <> ''
		GROUP BY agent_id, status ORDER BY agent_id`).Scan(&perAgent).Error; err != nil {
		return Stats{}, fmt.Errorf("claim stats: %w", storeErr(err))
	}
	for _, r := range perAgent {
		if n := len(st.PerAgent); n == 0 || st.PerAgent[n-1].AgentID != r.AgentID {
			st.PerAgent = append(st.PerAgent, AgentStats{AgentID: r.AgentID, ByStatus: map[Status]int64{}})
		}
		a := &st.PerAgent[len(st.PerAgent)-1]
		a.ByStatus[Status(r.Status)] = r.N
		a.Total += r.N
	}
	if err := gdb.Raw(`SELECT customer_id, COUNT(*) AS claims FROM claims WHERE `+visible+`
		GROUP BY customer_id ORDER BY COUNT(*) DESC, customer_id LIMIT ?`, q.TopCustomers).Scan(&st.TopCustomers).Error; err != nil {
		return Stats{}, fmt.Errorf("claim stats: %w", storeErr(err))
	}
	// resolve_ms is filled once both the creation and the resolution are
	// known; the cast makes AVG a float on both engines.
	var avg sql.NullFloat64
	if err := db.ScanRow(gdb.Raw(`SELECT COUNT(resolve_ms), AVG(CAST(resolve_ms AS DOUBLE PRECISION)) FROM claims WHERE `+visible), &st.Resolved, &avg); err != nil {
		return Stats{}, fmt.Errorf("claim stats: %w", storeErr(err))
	}
	if avg.Valid {
		st.AvgResolveSeconds = avg.Float64 / 1000
	}
	return st, nil
}
