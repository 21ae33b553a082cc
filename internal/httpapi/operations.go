package httpapi

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/metrics"
	"github.com/cloudreseller/credit/internal/streams"
)

// transportKind is how a request's responses travel.
type transportKind int

const (
	oneResponse transportKind = iota // plain POST or GET
	webSocket
	eventStream // server-sent events
)

type transportKey struct{}

// markTransport decides, once a request, how its responses travel, by the
// same tests gqlgen's transports use to pick the request up; the transports,
// the request's log line and the metrics of open connections all read it. It
// runs after limitBody: a POSTed subscription streams however its client
// ranks JSON, and telling one needs the body.
func (o observer) markTransport(next http.Handler) http.Handler {
	return markSockets(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := oneResponse
		switch {
		case r.Header.Get("Upgrade") != "":
			kind = webSocket
		case isEventStream(r):
			kind = eventStream
		}
		if rec := recordFrom(r.Context()); rec != nil {
			rec.transport = kind.String()
		}
		if kind != oneResponse {
			defer o.metrics.Connected(kind.String())()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), transportKey{}, kind)))
	}))
}

// String names the transport in logs and metrics.
func (k transportKind) String() string {
	return [...]string{oneResponse: "http", webSocket: "websocket", eventStream: "sse"}[k]
}

// isEventStream tells whether a request is to be answered as an event stream
// (eventStreams takes these, the POST transport the rest): a POST whose
// client prefers a stream to JSON, or whose operation is a subscription,
// which JSON cannot carry, and which accepts a stream at all.
func isEventStream(r *http.Request) bool {
	media, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost || media != "application/json" {
		return false
	}
	stream, asJSON := acceptRanks(r.Header.Get("Accept"))
	if stream.q == 0 {
		return false
	}
	return stream.q > asJSON.q || stream.q == asJSON.q && stream.order < asJSON.order || subscribes(r)
}

// rank is how an Accept header ranks a media type: its q-value (0: not
// accepted) and the place of the clause that gave it.
type rank struct {
	q     float64
	order int
}

// acceptRanks ranks text/event-stream and the best of the JSON types the API
// answers in (application/json, application/graphql-response+json, or a
// wildcard). A client ranks by q-value, then by order: urql accepts JSON
// first and text/event-stream after it for every operation; answered as a
// stream, its queries and mutations came back as events, and the client
// crashed on its next operation. A client that wants a stream (graphql-sse,
// urql's subscriptions) lists it first or alone.
func acceptRanks(accept string) (stream, asJSON rank) {
	for i, part := range strings.Split(accept, ",") {
		media, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		best := &asJSON
		switch media {
		case "text/event-stream":
			best = &stream
		case "application/json", "application/graphql-response+json", "application/*", "*/*":
		default:
			continue
		}
		if q > best.q { // the first of equals stays
			*best = rank{q, i}
		}
	}
	return stream, asJSON
}

// subscribes tells whether a POST's operation is a subscription, from the
// body limitBody read (no for a body it did not read, one that does not
// parse, or a persisted query's hash without its text).
func subscribes(r *http.Request) bool {
	b, ok := r.Body.(*readBody)
	if !ok {
		return false
	}
	var req struct{ Query, OperationName string }
	if json.Unmarshal(b.data, &req) != nil || req.Query == "" {
		return false
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: req.Query})
	if err != nil {
		return false
	}
	op := doc.Operations.ForName(req.OperationName)
	return op != nil && op.Operation == ast.Subscription
}

// eventStreams is gqlgen's SSE transport, taking the requests markTransport
// found to be event streams (isEventStream, decided once a request).
type eventStreams struct{ transport.SSE }

func (t eventStreams) Supports(r *http.Request) bool { return transportOf(r.Context()) == eventStream }

func transportOf(ctx context.Context) transportKind {
	k, _ := ctx.Value(transportKey{}).(transportKind)
	return k
}

// streamSessions registers every authenticated event stream as a session of
// its key, so that revoking the key or shutting down ends it. (WebSocket
// connections register when they sign in: see websocketInit.)
func streamSessions(ks *keys.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.FromContext(r.Context())
		if err != nil || transportOf(r.Context()) != eventStream {
			next.ServeHTTP(w, r)
			return
		}
		sess := ks.Sessions.Open(p.KeyID, nil)
		defer ks.Sessions.Close(sess)
		next.ServeHTTP(w, r.WithContext(keys.WithSession(r.Context(), sess)))
	})
}

// guardOperations authorises every operation against its key as it is now
// (a socket opened before a revocation cannot outlive it), refuses what a
// role may not select, and runs subscriptions only where they can stream,
// within the limits, telling the client why the server ended one.
func guardOperations(ks *keys.Service, present graphql.ErrorPresenterFunc, m *metrics.Metrics) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		fail := func(err error) graphql.ResponseHandler {
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{present(ctx, err)}})
		}
		op := graphql.GetOperationContext(ctx).Operation
		if p, err := auth.FromContext(ctx); err == nil {
			if err := ks.Check(ctx, p); err != nil {
				return fail(err)
			}
			if err := allowedSelection(p, op); err != nil {
				return fail(err)
			}
		}
		if op == nil || op.Operation != ast.Subscription {
			return withDeadline(ctx, next)
		}
		kind := transportOf(ctx)
		if kind == oneResponse {
			return fail(errs.E(errs.StreamingTransportRequired,
				"subscriptions stream: open them over WebSocket (graphql-transport-ws) or server-sent events (Accept: text/event-stream)"))
		}
		release := func() {}
		if sess := keys.SessionFrom(ctx); sess != nil {
			r, err := ks.Sessions.Subscribe(sess)
			if err != nil {
				return fail(err)
			}
			release = r
		}
		unsubscribed, unsessioned := m.Subscribed(kind.String()), release
		release = func() { unsessioned(); unsubscribed() }
		ctx, ending := streams.With(ctx)
		return endWithReason(next(ctx), ending, kind, release, present)
	}
}

// OperationTimeout bounds a query or mutation; statements have tighter
// bounds of their own (database.DefaultStatementTimeout).
const OperationTimeout = 10 * time.Second

// withDeadline runs a query or mutation with OperationTimeout.
func withDeadline(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		defer cancel()
		return responses(ctx)
	}
}

// endWithReason passes a subscription's responses on and, when the server
// ended it, tells the client why: an error message on a WebSocket (not a
// plain complete, which looks like a normal end), an error event on a stream.
func endWithReason(responses graphql.ResponseHandler, ending *streams.Ending, kind transportKind, release func(), present graphql.ErrorPresenterFunc) graphql.ResponseHandler {
	ended := false
	return func(ctx context.Context) *graphql.Response {
		if ended {
			return nil
		}
		if resp := responses(ctx); resp != nil {
			return resp
		}
		ended = true
		release()
		reason := ending.Err()
		if reason == nil {
			return nil
		}
		gqlErr := present(ctx, reason)
		if rec := recordFrom(ctx); rec != nil {
			noteErrors(rec, gqlerror.List{gqlErr})
		}
		if kind == webSocket {
			transport.AddSubscriptionError(ctx, gqlErr)
			return nil
		}
		return &graphql.Response{Errors: gqlerror.List{gqlErr}}
	}
}

// allowedSelection refuses, before anything runs, an operation that selects
// what the caller's role may not see: a BILLING key sees customers' ids (in
// the alerts its usage raised) and nothing else of them.
func allowedSelection(p auth.Principal, op *ast.OperationDefinition) error {
	if p.Role != auth.RoleBilling || op == nil {
		return nil
	}
	var walk func(ast.SelectionSet) error
	walk = func(set ast.SelectionSet) error {
		for _, sel := range set {
			var err error
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.ObjectDefinition != nil && sel.ObjectDefinition.Name == "Customer" && sel.Name != "id" && sel.Name != "__typename" {
					return errs.E(errs.Forbidden, "a BILLING key sees a customer's id only, not %s", sel.Name)
				}
				err = walk(sel.SelectionSet)
			case *ast.InlineFragment:
				err = walk(sel.SelectionSet)
			case *ast.FragmentSpread:
				if sel.Definition != nil {
					err = walk(sel.Definition.SelectionSet)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	return walk(op.SelectionSet)
}

// getTransport is gqlgen's GET transport, with a coded error for a mutation or
// subscription sent as GET (gqlgen answers 406 with no code).
type getTransport struct{ transport.GET }

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.GET.Do(&refusedGET{ResponseWriter: w, ctx: r.Context()}, r, exec)
}

// refusedGET replaces gqlgen's uncoded 406 answer.
type refusedGET struct {
	http.ResponseWriter
	ctx     context.Context
	refused bool
}

func (w *refusedGET) WriteHeader(code int) {
	if code != http.StatusNotAcceptable {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.refused = true
	w.Header().Set("Allow", "GET, POST")
	writeError(w.ctx, w.ResponseWriter, http.StatusMethodNotAllowed, errs.E(errs.BadRequest,
		"GET requests may only run queries: send mutations with POST, subscriptions over WebSocket or server-sent events"))
}

func (w *refusedGET) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// unsupportedTransport answers every request no other transport takes (an
// unknown content type or method) with a coded error; it must come last.
type unsupportedTransport struct{}

func (unsupportedTransport) Supports(*http.Request) bool { return true }

func (unsupportedTransport) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	status, msg := http.StatusUnsupportedMediaType,
		"send GraphQL as POST with Content-Type: application/json, as GET with a query parameter, or over WebSocket"
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", "GET, POST, OPTIONS")
	}
	writeError(r.Context(), w, status, errs.E(errs.BadRequest, "%s", msg))
}

// writeError writes a GraphQL error response with the error's code and the
// request's id, and notes the code for the request's log line.
func writeError(ctx context.Context, w http.ResponseWriter, status int, e *errs.Error) {
	extensions := map[string]any{"code": string(e.Code)}
	if rec := recordFrom(ctx); rec != nil {
		extensions["requestId"] = rec.requestID
		rec.fail(string(e.Code))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": e.Message, "extensions": extensions,
	}}})
}
