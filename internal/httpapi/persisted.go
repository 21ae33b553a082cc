package httpapi

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/internal/errs"
)

// Automatic persisted queries, as Apollo Client's persisted-query link and
// urql's persistedExchange send them: a query's SHA-256 instead of its text,
// the text only when the server answers PersistedQueryNotFound. Without this
// the hash-only request failed with "no operation provided", which those
// clients do not retry, so every operation of such an app failed.
const (
	// PersistedQueries is how many query texts a process keeps (each key
	// registers its own; see persistedQueryCache).
	PersistedQueries = 1000
	// MaxPersistedQueryBytes is the longest text kept: a longer query runs,
	// but must be sent in full each time. With PersistedQueries it bounds the
	// cache at about 32 MiB, as Apollo Server's default is.
	MaxPersistedQueryBytes = 32 << 10
)

// persistedQueries is gqlgen's AutomaticPersistedQuery with a code on each of
// its errors: it leaves a malformed extension, an unknown version or a hash
// that does not match the text uncoded, which would be presented as an
// internal error.
type persistedQueries struct {
	extension.AutomaticPersistedQuery
}

// The errors of a persisted query are request errors: nothing ran. Known as
// such, they are answered as the others are (overHTTP): 200 to an
// application/json client, 400 and no data to an
// application/graphql-response+json one. Apollo Client's link reads
// PersistedQueryNotFound from either and sends the text.
func init() {
	errcode.RegisterErrorType(string(errs.PersistedQueryNotFound), errcode.KindProtocol)
	errcode.RegisterErrorType(string(errs.BadRequest), errcode.KindProtocol)
}

func newPersistedQueries() persistedQueries {
	return persistedQueries{extension.AutomaticPersistedQuery{Cache: persistedQueryCache{lru.New[string](PersistedQueries)}}}
}

func (p persistedQueries) MutateOperationParameters(ctx context.Context, raw *graphql.RawParams) *gqlerror.Error {
	err := p.AutomaticPersistedQuery.MutateOperationParameters(ctx, raw)
	if err != nil && err.Extensions["code"] == nil {
		err.Message = "persisted query: " + err.Message
		setCode(err, string(errs.BadRequest))
	}
	return err
}

// persistedQueryCache keeps query texts by their hash and the key that sent
// them, so that whether a hash is known tells no caller what another key
// sent: a partner cannot learn that another partner ran a given query.
type persistedQueryCache struct{ texts *lru.LRU[string] }

func (c persistedQueryCache) Get(ctx context.Context, hash string) (string, bool) {
	return c.texts.Get(ctx, callerScope(ctx)+hash)
}

func (c persistedQueryCache) Add(ctx context.Context, hash, query string) {
	if len(query) > MaxPersistedQueryBytes {
		return
	}
	c.texts.Add(ctx, callerScope(ctx)+hash, query)
}

// callerScope names the key of the request ("" without one).
func callerScope(ctx context.Context) string {
	p, err := auth.FromContext(ctx)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s/%d/", p.Role, p.KeyID)
}
