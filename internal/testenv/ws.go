package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// The WebSocket subprotocols the server speaks.
const (
	TransportWS = "graphql-transport-ws" // the graphql-ws library's protocol
	LegacyWS    = "graphql-ws"           // subscriptions-transport-ws
)

// WSMessage is one protocol message.
type WSMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// WSClient is a GraphQL-over-WebSocket client speaking either subprotocol.
type WSClient struct {
	Protocol string
	conn     *websocket.Conn
	msgs     chan WSMessage
	closed   chan struct{}
	// CloseErr is why the connection ended; read it after Closed is closed.
	CloseErr error
}

// Dial opens a WebSocket to /graphql and sends connection_init with payload
// (nil for none). header is sent with the upgrade request.
func (s *Server) Dial(t testing.TB, protocol string, payload map[string]any, header http.Header) *WSClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{protocol}, HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if conn.Subprotocol() != protocol {
		t.Fatalf("server chose subprotocol %q, want %q", conn.Subprotocol(), protocol)
	}
	c := &WSClient{Protocol: protocol, conn: conn, msgs: make(chan WSMessage, 1000), closed: make(chan struct{})}
	go c.read()
	t.Cleanup(func() { conn.CloseNow() })
	init := WSMessage{Type: "connection_init"}
	if payload != nil {
		init.Payload, _ = json.Marshal(payload)
	}
	c.send(t, init)
	return c
}

func (c *WSClient) read() {
	defer close(c.closed)
	for {
		var m WSMessage
		if err := wsjson.Read(context.Background(), c.conn, &m); err != nil {
			c.CloseErr = err
			close(c.msgs)
			return
		}
		switch m.Type {
		case "ping":
			wsjson.Write(context.Background(), c.conn, WSMessage{Type: "pong"})
		case "pong", "ka":
		default:
			c.msgs <- m
		}
	}
}

func (c *WSClient) send(t testing.TB, m WSMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, c.conn, m); err != nil {
		t.Fatalf("write %s: %v", m.Type, err)
	}
}

// Acked waits for connection_ack.
func (c *WSClient) Acked(t testing.TB) {
	t.Helper()
	if m := c.Next(t, 5*time.Second); m.Type != "connection_ack" {
		t.Fatalf("want connection_ack, got %+v", m)
	}
}

// Subscribe starts a subscription with the id.
func (c *WSClient) Subscribe(t testing.TB, id, query string, vars map[string]any) {
	t.Helper()
	typ := "subscribe"
	if c.Protocol == LegacyWS {
		typ = "start"
	}
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	c.send(t, WSMessage{ID: id, Type: typ, Payload: payload})
}

// Stop ends a subscription from the client side.
func (c *WSClient) Stop(t testing.TB, id string) {
	typ := "complete"
	if c.Protocol == LegacyWS {
		typ = "stop"
	}
	c.send(t, WSMessage{ID: id, Type: typ})
}

// Next returns the next message, failing the test after timeout.
func (c *WSClient) Next(t testing.TB, timeout time.Duration) WSMessage {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if !ok {
			t.Fatalf("connection closed: %v", c.CloseErr)
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
	}
	return WSMessage{}
}

// Quiet fails the test if a message arrives within d.
func (c *WSClient) Quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-c.msgs:
		if ok {
			t.Fatalf("unexpected message %s %s", m.Type, m.Payload)
		}
	case <-time.After(d):
	}
}

// NextData waits for the next data message of a subscription and decodes its
// data into dest.
func (c *WSClient) NextData(t testing.TB, timeout time.Duration, dest any) {
	t.Helper()
	m := c.Next(t, timeout)
	if m.Type != "next" && m.Type != "data" {
		t.Fatalf("want a data message, got %s %s", m.Type, m.Payload)
	}
	var p struct {
		Data   json.RawMessage
		Errors []Error
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	if err := json.Unmarshal(p.Data, dest); err != nil {
		t.Fatalf("data %s: %v", p.Data, err)
	}
}

// CloseCode waits for the server to close the connection and returns the close
// code (-1 when it ended without one).
func (c *WSClient) CloseCode(t testing.TB, timeout time.Duration) websocket.StatusCode {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-c.msgs:
			if ok {
				continue // connection_error and the like precede the close
			}
			var ce websocket.CloseError
			if errors.As(c.CloseErr, &ce) {
				return ce.Code
			}
			return -1
		case <-deadline:
			t.Fatal("connection not closed")
		}
	}
}

// Stream posts an operation as server-sent events and returns the stream's
// lines as they arrive (the channel closes when the stream ends).
func (s *Server) Stream(t testing.TB, key, query string) <-chan string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// Messages is the channel of messages received (closed when the connection ends).
func (c *WSClient) Messages() <-chan WSMessage { return c.msgs }

// Close closes the connection from the client's side, normally.
func (c *WSClient) Close() {
	c.conn.Close(websocket.StatusNormalClosure, "bye")
}
