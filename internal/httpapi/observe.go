package httpapi

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/metrics"
)

// RequestIDHeader carries a request's id: taken from the client when it sends
// a usable one, generated otherwise, and always returned.
const RequestIDHeader = "X-Request-Id"

// record is what the request log line and the metrics say of one GraphQL
// operation (or of a request that never became one). Over HTTP and SSE a
// request holds one operation; a WebSocket connection holds many, each with a
// record of its own that shares the connection's request id.
type record struct {
	mu        sync.Mutex
	requestID string
	transport string // http, sse, websocket
	operation string
	opType    string // query, mutation, subscription; none before parsing
	role      string
	partnerID uint
	code      string // OK, or the first error's code
	start     time.Time
}

type recordKey struct{}

func recordFrom(ctx context.Context) *record {
	r, _ := ctx.Value(recordKey{}).(*record)
	return r
}

// requestID returns the id of the request ctx belongs to ("" outside one).
func requestID(ctx context.Context) string {
	if r := recordFrom(ctx); r != nil {
		return r.requestID
	}
	return ""
}

// fail notes the outcome code of an error, unless one is noted already: the
// first error is the one that says what went wrong.
func (r *record) fail(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == "" || r.code == "OK" {
		r.code = code
	}
}

// succeed notes a response without errors, unless an error was noted.
func (r *record) succeed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == "" {
		r.code = "OK"
	}
}

// describe notes the operation and caller of ctx.
func (r *record) describe(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		r.operation = oc.OperationName
		if oc.Operation != nil {
			r.operation, r.opType = oc.Operation.Name, string(oc.Operation.Operation)
		}
	}
	if p, err := auth.FromContext(ctx); err == nil {
		r.role, r.partnerID = string(p.Role), p.PartnerID
	}
}

// observer logs one line per request (per operation on a WebSocket) and feeds
// the metrics.
type observer struct {
	log     *slog.Logger
	metrics *metrics.Metrics
}

// finish logs the record's line and counts it.
func (o observer) finish(ctx context.Context, r *record, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	took := time.Since(r.start)
	if r.code == "" {
		r.code = "OK"
		if status >= 400 {
			r.code = http.StatusText(status)
		}
	}
	if r.opType == "" {
		r.opType = "none"
	}
	o.metrics.Operation(r.operation, r.opType, r.code, took)
	attrs := []slog.Attr{
		slog.String("request_id", r.requestID),
		slog.String("transport", r.transport),
		slog.String("operation", r.operation),
		slog.String("type", r.opType),
		slog.String("role", r.role),
		slog.String("code", r.code),
		slog.Duration("duration", took),
	}
	if r.partnerID != 0 {
		attrs = append(attrs, slog.Uint64("partner_id", uint64(r.partnerID)))
	}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	level := slog.LevelInfo
	if status >= 500 || r.code == "INTERNAL_SERVER_ERROR" {
		level = slog.LevelError
	}
	o.log.LogAttrs(ctx, level, "request", attrs...)
}

// requests gives every request to /graphql an id and a record, and, for a
// request that is not a WebSocket, logs it when it is answered.
func (o observer) requests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !usableRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set(RequestIDHeader, id)
		// markTransport, further in, names the transport (a POSTed
		// subscription is told from its body) and counts open streams.
		rec := &record{requestID: id, start: time.Now(), transport: oneResponse.String()}
		ctx := context.WithValue(r.Context(), recordKey{}, rec)
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r.WithContext(ctx)) // each operation logs itself, and the socket keeps the writer it hijacks
			return
		}
		if r.Method == http.MethodOptions {
			next.ServeHTTP(w, r.WithContext(ctx)) // CORS preflights are not requests of the API
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		o.finish(ctx, rec, sw.status())
	})
}

// usableRequestID accepts a client's request id of 1 to 128 characters that
// are safe to log and echo.
func usableRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '='
		if !ok {
			return false
		}
	}
	return true
}

// operations notes each operation's name, type and caller in its record; on
// a WebSocket it gives the operation a record of its own, logged when the
// operation ends.
func (o observer) operations(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	parent := recordFrom(ctx)
	if parent == nil {
		return next(ctx)
	}
	if parent.transport != "websocket" {
		parent.describe(ctx)
		return next(ctx)
	}
	rec := &record{requestID: parent.requestID, transport: parent.transport, start: time.Now()}
	rec.describe(ctx)
	ctx = context.WithValue(ctx, recordKey{}, rec)
	responses := next(ctx)
	ended := false
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if ended {
			return resp
		}
		single := rec.opType != string(ast.Subscription)
		if resp == nil || single {
			ended = true
			if resp != nil {
				noteErrors(rec, resp.Errors)
			}
			o.finish(ctx, rec, 0)
		}
		return resp
	}
}

// responses notes every response's outcome in the request's record: parse
// and validation failures too, which never reach the operation middleware.
func (o observer) responses(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	rec := recordFrom(ctx)
	if rec == nil || resp == nil {
		return resp
	}
	if rec.transport != "websocket" {
		rec.describe(ctx)
	}
	noteErrors(rec, resp.Errors)
	return resp
}

func noteErrors(rec *record, list gqlerror.List) {
	for _, e := range list {
		if code, ok := e.Extensions["code"].(string); ok {
			rec.fail(code)
			return
		}
	}
	if len(list) > 0 {
		rec.fail("INTERNAL_SERVER_ERROR")
		return
	}
	rec.succeed()
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets server-sent events through as they are written.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
