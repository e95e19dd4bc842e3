package correlation

import (
	"context"
	"crypto/rand"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// W3C trace context (traceparent/tracestate) travels beside the request id
// on every hop, through OpenTelemetry's propagator, so a trace started at
// the gateway or a client follows a checkout through saga, inventory,
// payment and order. Each process takes the caller's trace (or starts one)
// and passes it on with a span id of its own; a tracing SDK, when one is
// installed later, records spans under the same trace ids.
var propagator = propagation.TraceContext{}

// StartTrace returns ctx carrying the trace of the incoming request h —
// continued with a fresh span id of this process — or a new trace when the
// caller sent none.
func StartTrace(ctx context.Context, h http.Header) context.Context {
	ctx = propagator.Extract(ctx, propagation.HeaderCarrier(h))
	parent := trace.SpanContextFromContext(ctx)
	cfg := trace.SpanContextConfig{TraceFlags: trace.FlagsSampled, SpanID: newSpanID()}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		_, _ = rand.Read(cfg.TraceID[:])
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
}

// InjectTrace writes the trace of ctx into an outgoing request's headers.
func InjectTrace(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// TraceID is the trace of ctx in hex, for logs; "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	_, _ = rand.Read(id[:])
	return id
}
