// Package httpapi serves the GraphQL API over HTTP: the /graphql endpoint with
// its transports, the GraphiQL playground, and the health check.
package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/net/http/httpguts"
	"gorm.io/gorm"

	"github.com/cloudreseller/credit/graph"
	"github.com/cloudreseller/credit/internal/accounts"
	"github.com/cloudreseller/credit/internal/alerts"
	"github.com/cloudreseller/credit/internal/alerts/delivery"
	"github.com/cloudreseller/credit/internal/alerts/email"
	"github.com/cloudreseller/credit/internal/alerts/webhook"
	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/database"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/keys"
	"github.com/cloudreseller/credit/internal/ledger"
	"github.com/cloudreseller/credit/internal/loaders"
	"github.com/cloudreseller/credit/internal/metrics"
	"github.com/cloudreseller/credit/internal/playground"
	"github.com/cloudreseller/credit/resolvers"
)

// Services are what the API serves.
type Services struct {
	DB       *gorm.DB
	Accounts *accounts.Service
	Keys     *keys.Service
	Ledger   *ledger.Ledger
	Alerts   *alerts.Service
	Webhooks *webhook.Service
	Email    *email.Service
	// Deliveries is the log and queue of webhook and e-mail deliveries.
	Deliveries *delivery.Service
	Logger     *slog.Logger
	// Metrics are served on /metrics (made from the services when nil).
	Metrics *metrics.Metrics
	// MetricsToken, when set, is the bearer token /metrics requires.
	MetricsToken string
	// PlaygroundCDN serves the playground page that loads GraphiQL from its
	// public CDN, even when the build embeds GraphiQL.
	PlaygroundCDN bool
	// PingInterval overrides DefaultPingInterval (tests use a short one).
	PingInterval time.Duration
	// InitTimeout overrides DefaultInitTimeout.
	InitTimeout time.Duration
	// BodyTimeout overrides DefaultBodyTimeout.
	BodyTimeout time.Duration
}

// DefaultBodyTimeout is how long a request's body may take to arrive once its
// headers have (which http.Server bounds itself). Without it, a client that
// sent the headers of a POST and then nothing, or a byte a minute, held its
// connection and a goroutine for ever. 4 MiB (MaxBodyBytes) in 30 s asks
// 140 KB/s of the client.
const DefaultBodyTimeout = 30 * time.Second

// DefaultInitTimeout is how long a WebSocket client has to send
// connection_init (graphql-transport-ws closes with 4408 after it).
const DefaultInitTimeout = 10 * time.Second

// DefaultPingInterval is how often WebSocket clients hear from an idle server:
// graphql-transport-ws clients get a ping, and one that does not answer with a
// pong within two intervals is taken for a half-open connection and closed,
// which ends its subscriptions; legacy graphql-ws clients get a "ka", and
// server-sent event streams a ": ping" comment.
const DefaultPingInterval = 20 * time.Second

// New returns the service's HTTP handler.
func New(s Services) http.Handler {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.PingInterval <= 0 {
		s.PingInterval = DefaultPingInterval
	}
	if s.InitTimeout <= 0 {
		s.InitTimeout = DefaultInitTimeout
	}
	if s.BodyTimeout <= 0 {
		s.BodyTimeout = DefaultBodyTimeout
	}
	if s.Metrics == nil {
		src := metrics.Sources{Alerts: s.Alerts, Ledger: s.Ledger, Deliveries: s.Deliveries, Logger: s.Logger, Version: "unknown"}
		if s.DB != nil {
			src.DB, _ = s.DB.DB()
		}
		s.Metrics = metrics.New(src)
	}
	obs := observer{log: s.Logger, metrics: s.Metrics}
	api := obs.requests(allowCrossOrigin(limitBody(s.BodyTimeout, obs.markTransport(auth.Middleware(s.Keys, streamSessions(s.Keys, newGraphQL(s, obs)))))))
	mux := http.NewServeMux()
	mux.Handle("/graphql", api)
	mux.Handle("GET /metrics", requireToken(s.MetricsToken, s.Metrics.Handler()))
	playground.Register(mux, s.PlaygroundCDN)
	// healthz: the process is alive and serving (no store call, so an
	// orchestrator does not restart a healthy process for a database outage).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", ready(s))
	return mux
}

// ready answers whether this process can serve: the store answers, its schema
// is the version this build expects, and the alert tail has polled lately.
func ready(s Services) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		reason := ""
		if err := database.Ping(ctx, s.DB); err != nil {
			reason = "the database does not answer"
		} else if v, err := database.CurrentVersion(ctx, s.DB); err != nil || v != database.SchemaVersion() {
			reason = fmt.Sprintf("the database schema is at version %d, this build expects %d", v, database.SchemaVersion())
		} else if since := time.Since(s.Alerts.LastPoll()); since > ReadyTailLag {
			reason = fmt.Sprintf("the alert tail has not read the store for %s", since.Round(time.Second))
		}
		if reason != "" {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}
}

// ReadyTailLag is how long the alert tail may go without a successful poll
// before the process reports itself not ready.
const ReadyTailLag = 5 * time.Second

// newGraphQL returns the GraphQL server with its transports and extensions.
func newGraphQL(s Services, obs observer) *handler.Server {
	gql := handler.New(graph.NewExecutableSchema(graph.Config{
		Resolvers: &resolvers.Resolver{Accounts: s.Accounts, Keys: s.Keys, Ledger: s.Ledger, Alerts: s.Alerts, Webhooks: s.Webhooks,
			Email: s.Email, Deliveries: s.Deliveries},
		Complexity: complexity(),
	}))
	gql.AddTransport(websocketTransport(s.Keys, s.PingInterval, s.InitTimeout))
	// SSE before POST: both take POST requests, SSE those that prefer text/event-stream.
	gql.AddTransport(eventStreams{transport.SSE{KeepAlivePingInterval: s.PingInterval}})
	gql.AddTransport(transport.Options{})
	gql.AddTransport(overHTTP{getTransport{}})
	gql.AddTransport(overHTTP{transport.POST{}})
	gql.AddTransport(unsupportedTransport{})
	validated := lru.New[*ast.QueryDocument](1000)
	gql.SetQueryCache(validated)
	gql.SetParserTokenLimit(MaxTokens)
	gql.Use(newPersistedQueries())
	gql.Use(documentLimit{validated}) // after the persisted queries, which fill in the text
	gql.Use(extension.Introspection{})
	gql.Use(shapeLimit{})
	gql.Use(extension.FixedComplexityLimit(ComplexityLimit))
	present := withRequestID(boundedErrors(presentError(s.Logger)))
	gql.AroundOperations(obs.operations)
	gql.AroundOperations(guardOperations(s.Keys, present, s.Metrics))
	gql.AroundResponses(obs.responses)
	gql.AroundResponses(fewerErrors)
	loaded := loaders.Services{Accounts: s.Accounts, Ledger: s.Ledger, Alerts: s.Alerts}
	gql.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		return next(loaders.With(ctx, loaded))
	})
	gql.SetErrorPresenter(present)
	gql.SetRecoverFunc(func(ctx context.Context, v any) error {
		s.Logger.ErrorContext(ctx, "panic while resolving", "panic", v, "stack", string(debug.Stack()))
		return errors.New("panic") // presented as INTERNAL_SERVER_ERROR
	})
	return gql
}

// MaxBodyBytes bounds a request body (a recordUsage call of 1,000 events takes
// about 150 KB).
const MaxBodyBytes = 4 << 20

// limitBody refuses bodies larger than MaxBodyBytes (413) instead of reading
// them into memory whole, and answers 408 to one that does not arrive within
// timeout. The body is read here, under a read deadline that is cleared once
// it has come, so that an event stream (a POST answered for as long as it
// listens) is not cut by it; the transports read it from memory, and a read
// that failed otherwise fails for them as it did here.
func limitBody(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(timeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		rc.SetReadDeadline(time.Time{})
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			writeError(r.Context(), w, http.StatusRequestTimeout, errs.E(errs.BadRequest,
				"the request body did not arrive within %s of its headers", timeout))
			return
		case errors.As(err, &tooLarge):
			w.Header().Set("Connection", "close") // the rest is not read
			writeError(r.Context(), w, http.StatusRequestEntityTooLarge, errs.E(errs.BadUserInput,
				"the request body is larger than %d MiB", MaxBodyBytes>>20))
			return
		}
		r.Body = &readBody{Reader: io.MultiReader(bytes.NewReader(body), failedRead{err}), data: body}
		next.ServeHTTP(w, r)
	})
}

// readBody is a request body limitBody has read: the transports read it as
// they would the client's, and isEventStream may look at it first.
type readBody struct {
	io.Reader
	data []byte
}

func (*readBody) Close() error { return nil }

// failedRead ends a body read from memory as reading it from the client
// ended: nothing more (io.EOF), or the error (the connection was lost).
type failedRead struct{ err error }

func (f failedRead) Read([]byte) (int, error) {
	if f.err == nil {
		return 0, io.EOF
	}
	return 0, f.err
}

// allowCrossOrigin lets browser frontends on other origins call the API. It is
// safe for the same reason as cross-origin WebSockets: credentials are bearer
// keys the frontend sends itself, not cookies.
func allowCrossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", RequestIDHeader)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", allowedHeaders(r.Header.Get("Access-Control-Request-Headers")))
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHeaders answers a preflight's Access-Control-Request-Headers: every
// header the client asks for (Apollo's apollographql-client-name and -version,
// traceparent, X-Request-Id, whatever a frontend adds), since no header
// carries an ambient credential. A list that is not a list of header names
// gets the headers the API reads.
func allowedHeaders(requested string) string {
	const base = "Authorization, Content-Type, Accept, X-Request-Id"
	if requested == "" || len(requested) > 2048 {
		return base
	}
	for _, name := range strings.Split(requested, ",") {
		if !httpguts.ValidHeaderFieldName(strings.TrimSpace(name)) {
			return base
		}
	}
	return requested
}

// payloadCredential finds the Authorization entry of a connection_init payload,
// at its top or in a headers object, however the client capitalised it.
func payloadCredential(payload transport.InitPayload) string {
	for k, v := range payload {
		switch v := v.(type) {
		case string:
			if strings.EqualFold(k, "Authorization") {
				return v
			}
		case map[string]any:
			// {"headers": {"Authorization": …}}, as Hasura's clients send it.
			if strings.EqualFold(k, "headers") {
				if c := payloadCredential(v); c != "" {
					return c
				}
			}
		}
	}
	return ""
}

// presentError gives every error an extensions.code. Errors of the service keep
// their code and message; gqlgen's own parse and validation errors keep theirs;
// anything else is logged and shown only as an internal error, so that no SQL,
// driver text or stack reaches a client.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	conditions := storeConditions()
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var e *errs.Error
		if errors.As(err, &e) {
			gqlErr.Message = e.Message
			setCode(gqlErr, string(e.Code))
			return gqlErr
		}
		if _, ok := gqlErr.Extensions["code"]; ok {
			explainMissingOperation(gqlErr)
			return gqlErr
		}
		for _, c := range conditions {
			if c.is(err) {
				c.tell(ctx, log, err, gqlErr)
				return gqlErr
			}
		}
		if gqlErr.Err == nil && isRequestError(gqlErr.Message) {
			gqlErr.Message = "the request body is not a GraphQL request in JSON"
			setCode(gqlErr, "GRAPHQL_PARSE_FAILED")
			return gqlErr
		}
		if errors.Is(err, context.Canceled) {
			log.DebugContext(ctx, "operation canceled by the client", "path", gqlErr.Path.String())
		} else {
			log.ErrorContext(ctx, "internal error", "err", err, "path", gqlErr.Path.String())
		}
		gqlErr.Message = "internal server error"
		gqlErr.Err = nil
		setCode(gqlErr, string(errs.Internal))
		return gqlErr
	}
}

// storeCondition is a state of the store that a request's error comes from,
// which the client is told of (SERVICE_UNAVAILABLE: nothing was applied, try
// again) instead of an internal error, and which the log says once a minute
// while it lasts.
type storeCondition struct {
	is      func(error) bool
	message string // to the client
	log     string
	level   slog.Level
	logged  *repeated
}

// storeConditions are the store's states that a client may wait out, most
// particular first.
func storeConditions() []storeCondition {
	return []storeCondition{{
		is:      database.IsFull,
		message: "the database has no room left to store this: nothing was applied; try again once it has",
		log:     "the store has no room left: writes fail until it has",
		level:   slog.LevelError,
		logged:  &repeated{every: time.Minute},
	}, {
		is:      database.IsReadOnly,
		message: "the database takes no writes right now (read-only, as during a failover): nothing was applied; try again shortly",
		log:     "the store takes no writes (read-only): writes fail until it does",
		level:   slog.LevelWarn,
		logged:  &repeated{every: time.Minute},
	}, {
		is:      func(err error) bool { return database.IsUnavailable(err) && !errors.Is(err, context.Canceled) },
		message: "the database is not answering: try again shortly",
		log:     "store unavailable",
		level:   slog.LevelWarn,
		logged:  &repeated{every: time.Minute},
	}}
}

// tell logs the condition (at most once a minute) and makes gqlErr say it.
func (c storeCondition) tell(ctx context.Context, log *slog.Logger, err error, gqlErr *gqlerror.Error) {
	if n, ok := c.logged.allow(time.Now()); ok {
		log.Log(ctx, c.level, c.log, "err", err, "path", gqlErr.Path.String(), "since_last_logged", n)
	}
	gqlErr.Message = c.message
	gqlErr.Err = nil
	setCode(gqlErr, string(errs.ServiceUnavailable))
}

// explainMissingOperation rewrites gqlgen's "operation X not found", which
// reads "operation  not found" when a document of several operations comes
// without operationName (a client sending a file of them).
func explainMissingOperation(e *gqlerror.Error) {
	rest, ok := strings.CutPrefix(e.Message, "operation ")
	name, found := strings.CutSuffix(rest, " not found")
	switch {
	case !ok || !found || e.Err != nil:
	case name == "":
		e.Message = "the document holds several operations (or none): name the one to run in operationName"
	default:
		e.Message = fmt.Sprintf("the document holds no operation named %q", name)
	}
}

// withRequestID adds the request's id to every error, so that a client's
// report can be matched with the server's log line.
func withRequestID(present graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := present(ctx, err)
		if id := requestID(ctx); id != "" {
			if gqlErr.Extensions == nil {
				gqlErr.Extensions = map[string]any{}
			}
			gqlErr.Extensions["requestId"] = id
		}
		return gqlErr
	}
}

// requireToken serves next only to requests bearing the token, when one is
// set (METRICS_TOKEN): Prometheus sends it with its scrape's authorization.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "send the metrics token as 'Authorization: Bearer <token>'", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// repeated lets a failure that repeats (every request during a database
// outage) be logged once a period, with how many times it happened since:
// each request's own line already says it failed.
type repeated struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow tells whether to log now, and how many were not logged before.
func (r *repeated) allow(now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}

func setCode(e *gqlerror.Error, code string) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = code
}

// isRequestError recognises the errors gqlgen's transports raise for a body they
// cannot decode (they carry no code, and echo the body).
func isRequestError(msg string) bool {
	return strings.HasPrefix(msg, "json request body could not be decoded") ||
		strings.HasPrefix(msg, "could not read request body") ||
		strings.HasPrefix(msg, "unable to get Request Body")
}
