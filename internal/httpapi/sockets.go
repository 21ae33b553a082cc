package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/errs"
	"github.com/cloudreseller/credit/internal/keys"
)

// WebSocket close codes beyond gqlgen's own.
const (
	closeGoingAway     = 1001 // the server shuts down
	closeBadMessage    = 4400 // graphql-transport-ws: invalid message
	closeUnauthorized  = 4401 // no valid key, or the key was revoked
	closeForbidden     = 4403 // the key's role may not subscribe
	closeInitTimeout   = 4408 // graphql-transport-ws: no connection_init in time
	closeDuplicateID   = 4409 // graphql-transport-ws: subscriber for the id already exists
	closeTooManyInits  = 4429 // graphql-transport-ws: a second connection_init
	closeServiceFailed = 4500 // the service cannot serve now (store down): retry
)

// socket is one WebSocket connection as this package sees it: why the server
// closes it, and which operation ids are active (gqlgen tracks neither).
type socket struct {
	mu     sync.Mutex
	code   int
	reason string
	cancel context.CancelFunc
	active map[string]bool
	inited bool // connection_init received
}

type socketKey struct{}

// markSockets gives every WebSocket upgrade request a socket, before gqlgen
// takes the connection over.
func markSockets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			r = r.WithContext(context.WithValue(r.Context(), socketKey{}, &socket{active: map[string]bool{}}))
		}
		next.ServeHTTP(w, r)
	})
}

func socketFrom(ctx context.Context) *socket {
	s, _ := ctx.Value(socketKey{}).(*socket)
	return s
}

// closeWith closes the connection with the code and reason: it ends the
// connection's context, and gqlgen's close is given this code instead of its
// own 1000.
func (s *socket) closeWith(code int, reason string) {
	s.mu.Lock()
	if s.code == 0 {
		s.code, s.reason = code, reason
	}
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// override returns the code and reason set by closeWith, if any.
func (s *socket) override() (int, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.code, s.reason, s.code != 0
}

// sockets accepts WebSocket connections with coder/websocket (through gqlgen's
// adapter) and wraps each in a socketConn.
type sockets struct {
	inner transport.CoderWebsocketImplementation
}

func (i sockets) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := i.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	s := socketFrom(r.Context())
	if s == nil {
		s = &socket{active: map[string]bool{}}
	}
	return &socketConn{WebsocketConn: conn, sock: s}, nil
}

// socketConn enforces the graphql-transport-ws rules gqlgen leaves out (4400
// for a message that is not one, 4409 for a second subscribe with an active
// id) and closes with the code the server chose.
type socketConn struct {
	transport.WebsocketConn
	sock *socket
}

// clientMessage is what the server reads of a client's message.
type clientMessage struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

func (c *socketConn) NextReader() (int, io.Reader, error) {
	typ, r, err := c.WebsocketConn.NextReader()
	if err != nil {
		return typ, r, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return typ, nil, err
	}
	if bytes.Equal(b, pong) {
		return typ, bytes.NewReader(b), nil // the answer to every ping: no state to track
	}
	var m clientMessage
	if err := json.Unmarshal(b, &m); err != nil || m.Type == "" {
		return typ, nil, c.refuse(closeBadMessage, "invalid message received")
	}
	if err := c.track(m); err != nil {
		return typ, nil, err
	}
	return typ, bytes.NewReader(b), nil
}

// track follows the protocol's state, as graphql-transport-ws requires: the
// first message must be connection_init (4401 otherwise), and the only one
// (4429); a subscribe with an id in use closes the connection (4409).
func (c *socketConn) track(m clientMessage) error {
	strict := c.Subprotocol() == transportWS
	c.sock.mu.Lock()
	inited, duplicate := c.sock.inited, false
	switch m.Type {
	case "connection_init":
		c.sock.inited = true
	case "subscribe", "start":
		duplicate = c.sock.active[m.ID]
		c.sock.active[m.ID] = true
	case "complete", "stop":
		delete(c.sock.active, m.ID)
	}
	c.sock.mu.Unlock()
	switch {
	case strict && m.Type == "connection_init" && inited:
		return c.refuse(closeTooManyInits, "Too many initialisation requests")
	case strict && !inited && m.Type != "connection_init" && m.Type != "ping" && m.Type != "pong":
		return c.refuse(closeUnauthorized, "Unauthorized")
	case duplicate:
		return c.refuse(closeDuplicateID, "Subscriber for "+m.ID+" already exists")
	}
	return nil
}

// transportWS is the graphql-ws library's subprotocol, whose close codes this
// file follows.
const transportWS = "graphql-transport-ws"

func (c *socketConn) refuse(code int, reason string) error {
	c.sock.mu.Lock()
	if c.sock.code == 0 {
		c.sock.code, c.sock.reason = code, reason
	}
	c.sock.mu.Unlock()
	c.WebsocketConn.WriteClose(code, reason)
	return errors.New(reason)
}

// pong is what graphql-ws clients answer to the server's pings.
var pong = []byte(`{"type":"pong"}`)

// serverDone matches the messages that end an operation from the server's side.
var serverDone = [][]byte{[]byte(`"type":"complete"`), []byte(`"type":"error"`)}

func (c *socketConn) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	for _, done := range serverDone {
		if bytes.Contains(b, done) {
			var m clientMessage
			if json.Unmarshal(b, &m) == nil {
				c.sock.mu.Lock()
				delete(c.sock.active, m.ID)
				c.sock.mu.Unlock()
			}
		}
	}
	return c.WebsocketConn.WriteJSON(json.RawMessage(b))
}

func (c *socketConn) WriteClose(code int, reason string) error {
	if o, r, ok := c.sock.override(); ok {
		code, reason = o, r
	} else if code == transport.WebsocketCloseProtocolError && strings.Contains(reason, "initialisation timeout") && c.Subprotocol() == transportWS {
		code, reason = closeInitTimeout, "Connection initialisation timeout"
	}
	return c.WebsocketConn.WriteClose(code, reason)
}

// SetReadLimit and SetReadDeadline pass gqlgen's optional settings through.
func (c *socketConn) SetReadLimit(n int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

// SetReadDeadline passes gqlgen's half-open detection through.
func (c *socketConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// websocketTransport is gqlgen's WebSocket transport with this service's
// sign-in, close codes and session tracking.
func websocketTransport(ks *keys.Service, pingInterval, initTimeout time.Duration) transport.Websocket {
	return transport.Websocket{
		// Keys travel in connection_init or the Authorization header, never in
		// cookies, so a page on another origin cannot borrow a visitor's
		// credentials: frontends on any origin may connect.
		Implementation: sockets{inner: transport.CoderWebsocketImplementation{
			AcceptOptions: websocket.AcceptOptions{OriginPatterns: []string{"*"}},
		}},
		InitFunc:              websocketInit(ks),
		InitTimeout:           initTimeout,
		KeepAlivePingInterval: pingInterval,
		PingPongInterval:      pingInterval,
		CloseFunc: func(ctx context.Context, _ int) {
			if sess := keys.SessionFrom(ctx); sess != nil {
				ks.Sessions.Close(sess)
			}
		},
	}
}

// websocketInit authenticates a WebSocket connection from its connection_init
// payload ({"Authorization": "Bearer <key>"}), or else from the upgrade
// request's Authorization header, and registers it as a session of its key.
// Without a valid key the connection is closed with 4401 (4403 for a role that
// may not subscribe; 4500 when the store cannot tell) before anything is
// subscribed.
func websocketInit(ks *keys.Service) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		if credential := payloadCredential(payload); credential != "" {
			ctx = auth.Resolve(ctx, ks, credential)
		}
		p, err := auth.FromContext(ctx)
		if err == nil {
			err = p.Require(auth.RoleAdmin, auth.RolePartner)
		}
		// The close frame's reason is what the client's library shows (graphql-ws's
		// CloseEvent): the error's message, not gqlgen's "terminated".
		refuse := func(code int, err error) (context.Context, *transport.InitPayload, error) {
			ctx := transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, code), closeReason(err))
			return ctx, nil, err
		}
		switch errs.CodeOf(err) {
		case "":
		case errs.Unauthenticated:
			return refuse(closeUnauthorized, err)
		case errs.Forbidden:
			return refuse(closeForbidden, err)
		default:
			return refuse(closeServiceFailed, errs.E(errs.ServiceUnavailable, "the service cannot check API keys right now; reconnect shortly"))
		}
		sock := socketFrom(ctx)
		if sock == nil {
			return ctx, nil, nil
		}
		ctx, cancel := context.WithCancel(ctx)
		sock.mu.Lock()
		sock.cancel = cancel
		sock.mu.Unlock()
		sess := ks.Sessions.Open(p.KeyID, func(reason error) {
			code := closeUnauthorized
			if errs.CodeOf(reason) == errs.ShuttingDown {
				code = closeGoingAway
			}
			sock.closeWith(code, closeReason(reason))
		})
		return keys.WithSession(ctx, sess), nil, nil
	}
}

// closeReason is the text of a close frame: at most 123 bytes.
func closeReason(err error) string {
	var e *errs.Error
	msg := "closed by the server"
	if errors.As(err, &e) {
		msg = e.Message
	}
	if len(msg) > 123 {
		msg = msg[:123]
	}
	return msg
}
