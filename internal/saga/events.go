package saga

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/retailco/pos/internal/platform/events"
	"github.com/retailco/pos/internal/platform/outbox"
)

// Events this context publishes (docs/events.md): the outcome of every
// checkout, written to the outbox in the transaction that records the
// final state, so the dashboard's success rate counts each checkout once.
const (
	CheckoutCompletedEvent = "saga.CheckoutCompleted"
	CheckoutFailedEvent    = "saga.CheckoutFailed"
)

// CheckoutCompleted is the data of a CheckoutCompletedEvent.
type CheckoutCompleted struct {
	SagaID      string    `json:"saga_id"`
	OrderID     string    `json:"order_id"`
	CustomerID  string    `json:"customer_id"`
	TotalCents  int64     `json:"total_cents"`
	Currency    string    `json:"currency"`
	DurationMS  int64     `json:"duration_ms"`
	CompletedAt time.Time `json:"completed_at"`
}

// CheckoutFailed is the data of a CheckoutFailedEvent.
type CheckoutFailed struct {
	SagaID      string    `json:"saga_id"`
	CustomerID  string    `json:"customer_id"`
	FailedStep  string    `json:"failed_step"`
	Reason      string    `json:"reason"`
	Compensated bool      `json:"compensated"`
	FailedAt    time.Time `json:"failed_at"`
}

// publishOutcome adds the event of a checkout that just reached its final
// state in tx.
func publishOutcome(tx *gorm.DB, row *sagaRow) error {
	env, err := outcomeEvent(tx.Statement.Context, row)
	if err != nil {
		return err
	}
	return outbox.Add(tx, env)
}

// outcomeEvent is the event of a checkout whose final state row holds,
// at row.Version.
func outcomeEvent(ctx context.Context, row *sagaRow) (events.Envelope, error) {
	at := row.UpdatedAt
	if row.FinishedAt != nil {
		at = *row.FinishedAt
	}
	var (
		eventType string
		data      any
	)
	if row.Status == StateCompleted {
		eventType = CheckoutCompletedEvent
		data = CheckoutCompleted{SagaID: row.ID, OrderID: row.OrderID, CustomerID: row.CustomerID, TotalCents: row.TotalCents,
			Currency: row.Currency, DurationMS: at.Sub(row.CreatedAt).Milliseconds(), CompletedAt: at}
	} else {
		eventType = CheckoutFailedEvent
		data = CheckoutFailed{SagaID: row.ID, CustomerID: row.CustomerID, FailedStep: row.FailedStep, Reason: row.Error,
			Compensated: true, FailedAt: at}
	}
	return events.New(ctx, eventType, row.ID, int64(row.Version), data)
}
