// Package errs defines the one error type the service returns to its callers.
//
// Every error a client may see carries a Code, which the GraphQL layer exposes as
// extensions.code, and a Message written for people. Callers decide what to do by
// the Code, never by the text. Anything that is not an *Error is an internal
// failure: it is logged, and the client only learns that something went wrong.
package errs

import (
	"errors"
	"fmt"
)

// Code classifies an error for clients.
type Code string

// The codes a client may see.
const (
	Unauthenticated             Code = "UNAUTHENTICATED"
	Forbidden                   Code = "FORBIDDEN"
	NotFound                    Code = "NOT_FOUND"
	BadUserInput                Code = "BAD_USER_INPUT"
	InsufficientAvailableCredit Code = "INSUFFICIENT_AVAILABLE_CREDIT"
	PartnerCreditExceeded       Code = "PARTNER_CREDIT_EXCEEDED"
	IdempotencyConflict         Code = "IDEMPOTENCY_CONFLICT"
	Internal                    Code = "INTERNAL_SERVER_ERROR"
	// BadRequest: the HTTP request is not one the API takes (method, content
	// type, a malformed persisted query).
	BadRequest Code = "BAD_REQUEST"
	// PersistedQueryNotFound: a persisted query's hash came without its text,
	// and this process does not know it for this key; send the text with it
	// (Apollo's and urql's persisted-query links do).
	PersistedQueryNotFound Code = "PERSISTED_QUERY_NOT_FOUND"
	// ServiceUnavailable: the store does not answer (or not in time); retry.
	ServiceUnavailable Code = "SERVICE_UNAVAILABLE"
	// SlowConsumer: a subscription fell too far behind and was ended; resume
	// it with `after`.
	SlowConsumer Code = "SLOW_CONSUMER"
	// TooManySubscriptions: a connection or key has as many open as allowed.
	TooManySubscriptions Code = "TOO_MANY_SUBSCRIPTIONS"
	// StreamingTransportRequired: a subscription was sent where only one
	// response can be given (plain POST or GET); use WebSocket or SSE.
	StreamingTransportRequired Code = "STREAMING_TRANSPORT_REQUIRED"
	// ShuttingDown: the server is stopping; reconnect (to another process).
	ShuttingDown Code = "SHUTTING_DOWN"
)

// Error is an error meant for the client: its Message is safe to show.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// E returns an *Error with the code and a message formatted as by fmt.Sprintf.
func E(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal when
// there is none (and "" for a nil error).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
