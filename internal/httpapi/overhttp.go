package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	bw := &bufferedAnswer{ResponseWriter: w, ctx: r.Context()}
	t.Transport.Do(bw, r, exec)
	bw.send()
}

// bufferedAnswer holds a request error's answer until the transport is done,
// to give it the status and body its media type calls for. Other answers pass
// straight through.
type bufferedAnswer struct {
	http.ResponseWriter
	ctx  context.Context
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

// send writes a held answer. gqlgen holds two kinds: a document that does
// not parse or validate (422, or 400 to application/graphql-response+json),
// which an application/json client gets with a 200; and a request it could
// not decode (400 to both: a body, or a GET parameter, that is not JSON of a
// GraphQL request's shape), which stays a 400, as the specification asks of
// a request that is not well-formed. The errors of GET's parameters bypass
// the error presenter, so they are given their code here.
func (w *bufferedAnswer) send() {
	if !w.held {
		return
	}
	body := w.body.Bytes()
	var answer map[string]json.RawMessage
	var errList []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	if json.Unmarshal(body, &answer) != nil || json.Unmarshal(answer["errors"], &errList) != nil || len(errList) == 0 {
		writeError(w.ctx, w.ResponseWriter, http.StatusBadRequest, errs.E(errs.BadRequest, "the request could not be read"))
		return
	}
	if errList[0].Extensions["code"] == nil {
		writeError(w.ctx, w.ResponseWriter, http.StatusBadRequest, errs.E(errs.BadRequest, "%s", undecodable(errList[0].Message)))
		return
	}
	media, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if media != "application/graphql-response+json" && w.code != http.StatusBadRequest {
		w.ResponseWriter.WriteHeader(http.StatusOK)
		w.ResponseWriter.Write(body)
		return
	}
	delete(answer, "data") // the request did not run
	if b, err := json.Marshal(answer); err == nil {
		body = b
	}
	w.ResponseWriter.WriteHeader(w.code)
	w.ResponseWriter.Write(body)
}

// undecodable says what was wrong with a GET request's parameters, from
// gqlgen's message.
func undecodable(msg string) string {
	switch msg {
	case "variables could not be decoded":
		return "the variables parameter is not a JSON object"
	case "extensions could not be decoded":
		return "the extensions parameter is not a JSON object"
	}
	return fmt.Sprintf("the URL's query string does not parse (%s)", msg)
}

// isBatch tells whether a POST body is a JSON array, as Apollo's
// BatchHttpLink sends: without this the client got a parse error about its
// body, not what to change.
func isBatch(r *http.Request) bool {
	b, ok := r.Body.(*readBody)
	return ok && r.Method == http.MethodPost && bytes.HasPrefix(bytes.TrimLeft(b.data, " \t\r\n"), []byte("["))
}
