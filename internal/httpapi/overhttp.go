package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/99designs/gqlgen/graphql"

	"github.com/cloudreseller/credit/internal/errs"
)

// overHTTP adjusts a plain HTTP transport's answers to a request error (a
// body that is not JSON, a document that does not parse or validate) to what
// the GraphQL-over-HTTP specification asks of each response media type:
//
//   - application/json (what Apollo Client, urql and GraphiQL get when they
//     send Accept: */* or application/json): HTTP 200, as clients of that type
//     read GraphQL errors only from a 2xx answer (gqlgen says 422 or 400, which
//     Apollo Client 3 reports as a network error without the errors);
//   - application/graphql-response+json: a 4xx status, and no "data" entry,
//     which tells the client that the request did not execute.
type overHTTP struct{ graphql.Transport }

func (t overHTTP) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if isBatch(r) {
		writeError(r.Context(), w, http.StatusBadRequest, errs.E(errs.BadRequest,
			"batched requests (a JSON array of operations) are not supported: send each operation in a request of its own"))
		return
	}
	bw := &bufferedAnswer{ResponseWriter: w}
	t.Transport.Do(bw, r, exec)
	bw.send()
}

// bufferedAnswer holds a request error's answer until the transport is done,
// to give it the status and body its media type calls for. Other answers pass
// straight through.
type bufferedAnswer struct {
	http.ResponseWriter
	held bool
	code int
	body bytes.Buffer
}

func (w *bufferedAnswer) WriteHeader(code int) {
	if code < 400 || code == http.StatusMethodNotAllowed || code == http.StatusUnsupportedMediaType || code == http.StatusRequestEntityTooLarge {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.held, w.code = true, code
}

func (w *bufferedAnswer) Write(b []byte) (int, error) {
	if w.held {
		return w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *bufferedAnswer) send() {
	if !w.held {
		return
	}
	media, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if media != "application/graphql-response+json" {
		w.ResponseWriter.WriteHeader(http.StatusOK)
		w.ResponseWriter.Write(w.body.Bytes())
		return
	}
	body := w.body.Bytes()
	var answer map[string]json.RawMessage
	if json.Unmarshal(body, &answer) == nil {
		delete(answer, "data")
		if b, err := json.Marshal(answer); err == nil {
			body = b
		}
	}
	w.ResponseWriter.WriteHeader(w.code)
	w.ResponseWriter.Write(body)
}

// isBatch tells whether a POST body is a JSON array, as Apollo's
// BatchHttpLink sends: without this the client got a parse error about its
// body, not what to change. The body is left for the transport to read.
func isBatch(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Body == nil {
		return false
	}
	br := bufio.NewReader(r.Body)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	for {
		c, err := br.Peek(1)
		if err != nil {
			return false
		}
		switch c[0] {
		case ' ', '\t', '\r', '\n':
			br.Discard(1)
		default:
			return c[0] == '['
		}
	}
}
