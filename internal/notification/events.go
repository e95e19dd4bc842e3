package notification

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The event types this context reacts to (docs/events.md). ClaimStarted is
// listed only to say, in code too, that it notifies nobody.
const (
	evClaimCreated   = "claims.ClaimCreated"
	evClaimAssigned  = "claims.ClaimAssigned"
	evClaimStarted   = "claims.ClaimStarted"
	evClaimResolved  = "claims.ClaimResolved"
	evClaimClosed    = "claims.ClaimClosed"
	evOrderConfirmed = "orders.OrderConfirmed"
	evOrderCancelled = "orders.OrderCancelled"
)

// notifies tells whether an event type produces any notification.
func notifies(eventType string) bool {
	switch eventType {
	case evClaimCreated, evClaimAssigned, evClaimResolved, evClaimClosed, evOrderConfirmed, evOrderCancelled:
		return true
	case evClaimStarted:
		// The customer heard "an agent is on it" at assignment; starting
		// work adds nothing worth a message.
		return false
	}
	return false // types we do not know: producers may add some
}

// claimEvent is the data of the claims.* events we read; each event fills
// the fields it carries. CustomerID is on ClaimCreated only (a later event
// that carries it too is used as is).
type claimEvent struct {
	ClaimID     string `json:"claim_id"`
	CustomerID  string `json:"customer_id"`
	ClaimType   string `json:"claim_type"`
	Description string `json:"description"`
	ProductID   string `json:"product_id"`
	OrderID     string `json:"order_id"`
	AgentID     string `json:"agent_id"`
	Resolution  string `json:"resolution"`
}

// orderEvent is the data of orders.OrderConfirmed and OrderCancelled.
type orderEvent struct {
	OrderID       string      `json:"order_id"`
	CustomerID    string      `json:"customer_id"`
	Lines         []orderLine `json:"lines"`
	SubtotalCents int64       `json:"subtotal_cents"`
	TaxCents      int64       `json:"tax_cents"`
	TotalCents    int64       `json:"total_cents"`
	Currency      string      `json:"currency"`
}

type orderLine struct {
	SKU            string `json:"sku"`
	Name           string `json:"name"`
	Quantity       int64  `json:"quantity"`
	LineTotalCents int64  `json:"line_total_cents"`
}

// content is what one event says to one customer: an e-mail (subject and
// body) and the SMS text.
type content struct {
	subject string
	body    string
	sms     string
}

// brand signs every message.
const brand = "RetailCo"

// greeting opens an e-mail; name may be empty (unknown customer).
func greeting(name string) string {
	if name = strings.TrimSpace(name); name != "" {
		return "Hello " + name + ",\n\n"
	}
	return "Hello,\n\n"
}

const signature = "\n\nThe " + brand + " team\n"

var claimTypeNames = map[string]string{
	"product_defect":    "product defect",
	"delivery_issue":    "delivery issue",
	"billing_error":     "billing error",
	"service_complaint": "service complaint",
}

// claimContent renders a claim event for the customer who filed it.
func claimContent(eventType string, e claimEvent, name string) content {
	id := e.ClaimID
	switch eventType {
	case evClaimCreated:
		kind := claimTypeNames[e.ClaimType]
		if kind == "" {
			kind = "claim"
		}
		var b strings.Builder
		b.WriteString(greeting(name))
		fmt.Fprintf(&b, "We received your claim %s (%s) and will get back to you soon.", id, kind)
		if e.Description != "" {
			fmt.Fprintf(&b, "\n\nWhat you told us:\n%s", clip(e.Description, 1000))
		}
		if e.OrderID != "" {
			fmt.Fprintf(&b, "\n\nOrder: %s", e.OrderID)
		}
		if e.ProductID != "" {
			fmt.Fprintf(&b, "\nProduct: %s", e.ProductID)
		}
		b.WriteString(signature)
		return content{
			subject: "We received your claim " + id,
			body:    b.String(),
			sms:     fmt.Sprintf("%s: we received your claim %s and will keep you posted.", brand, id),
		}
	case evClaimAssigned:
		return content{
			subject: "An agent is working on your claim " + id,
			body: greeting(name) + fmt.Sprintf("An agent has taken on your claim %s and will be in touch.", id) +
				signature,
			sms: fmt.Sprintf("%s: an agent is now working on your claim %s.", brand, id),
		}
	case evClaimResolved:
		resolution := clip(e.Resolution, 2000)
		if resolution == "" {
			resolution = "(no details given)"
		}
		return content{
			subject: "Your claim " + id + " is resolved",
			body: greeting(name) + fmt.Sprintf("Your claim %s is resolved.\n\nResolution:\n%s", id, resolution) +
				signature,
			sms: fmt.Sprintf("%s: your claim %s is resolved: %s", brand, id, clip(e.Resolution, 100)),
		}
	default: // evClaimClosed
		return content{
			subject: "Your claim " + id + " is closed",
			body:    greeting(name) + fmt.Sprintf("Your claim %s is now closed. Thank you for your patience.", id) + signature,
			sms:     fmt.Sprintf("%s: your claim %s is closed.", brand, id),
		}
	}
}

// agentContent is what the agent a claim was assigned to reads.
func agentContent(e claimEvent, customerID string) content {
	return content{
		subject: "Claim " + e.ClaimID + " assigned to you",
		body:    fmt.Sprintf("Claim %s, filed by customer %s, is assigned to you.", e.ClaimID, customerID),
	}
}

// orderContent renders an order event for its customer.
func orderContent(eventType string, e orderEvent, name string) content {
	total := money(e.TotalCents, e.Currency)
	if eventType == evOrderCancelled {
		return content{
			subject: "Your order " + e.OrderID + " is cancelled",
			body: greeting(name) + fmt.Sprintf("Your order %s is cancelled. If you were charged, the %s is refunded "+
				"to your original payment method.", e.OrderID, total) + signature,
			sms: fmt.Sprintf("%s: your order %s is cancelled; any charge (%s) is refunded.", brand, e.OrderID, total),
		}
	}
	var b strings.Builder
	b.WriteString(greeting(name))
	fmt.Fprintf(&b, "Thank you for your order %s. It is confirmed.\n", e.OrderID)
	if len(e.Lines) > 0 {
		b.WriteString("\n")
		for _, l := range e.Lines {
			label := l.Name
			if label == "" {
				label = l.SKU
			}
			fmt.Fprintf(&b, "  %d x %s  %s\n", l.Quantity, label, money(l.LineTotalCents, e.Currency))
		}
	}
	fmt.Fprintf(&b, "\nSubtotal: %s\nTax: %s\nTotal: %s", money(e.SubtotalCents, e.Currency),
		money(e.TaxCents, e.Currency), total)
	b.WriteString(signature)
	return content{
		subject: "Order " + e.OrderID + " confirmed: " + total,
		body:    b.String(),
		sms:     fmt.Sprintf("%s: order %s confirmed, total %s.", brand, e.OrderID, total),
	}
}

// money writes integer cents as "1234.56 CAD": no float ever touches it.
func money(cents int64, currency string) string {
	if currency == "" {
		currency = "CAD"
	}
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

// clip shortens text to at most n runes, marking the cut.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
