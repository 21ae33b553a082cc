// Package playground serves the GraphiQL playground page.
//
// GraphiQL's current release is built from npm packages by Vite into
// dist/graphiql (`go generate ./internal/playground`, which .ci/run runs) and
// embedded into the binary, so the page needs nothing but this server: it
// works offline and behind firewalls. The bundles are a build product, never
// committed. A binary built without them serves a page that loads GraphiQL
// from its public CDN instead, and says so in its log.
package playground

import (
	"bytes"
	"compress/gzip"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:generate sh -c "cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent"

//go:embed all:dist
var dist embed.FS

// Built tells whether this binary embeds the GraphiQL build.
func Built() bool {
	_, err := fs.Stat(dist, "dist/graphiql/index.html")
	return err == nil
}

// Register serves the playground on mux: the page on GET /, and its files
// under /assets/. With cdn, or without an embedded build, the page loads
// GraphiQL from the public CDN.
func Register(mux *http.ServeMux, cdn bool) {
	if cdn || !Built() {
		mux.Handle("GET /{$}", unframed(cdnPage()))
		return
	}
	files, err := fs.Sub(dist, "dist/graphiql")
	if err != nil {
		panic(err) // Built said the directory is there
	}
	server := compressed(files, http.FileServerFS(files))
	mux.Handle("GET /{$}", unframed(noCache(server)))
	// Asset names carry a hash of their content: they never change.
	mux.Handle("GET /assets/", nosniff(immutable(server)))
}

// unframed forbids other sites to frame the page: one that did could steer
// a visitor's clicks while a key sits in the Headers tab.
func unframed(next http.Handler) http.Handler {
	return nosniff(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY") // for browsers before CSP 2
		next.ServeHTTP(w, r)
	}))
}

// nosniff keeps browsers to the type a file is served as.
func nosniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// compressed serves a browser that takes gzip the gzipped file (7 MB of
// GraphiQL and Monaco are 2 MB so): each file is compressed once, on its first
// request, and kept, since embedded files never change.
func compressed(files fs.FS, next http.Handler) http.Handler {
	var cache sync.Map // name → []byte
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		}
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") || !compressible(name) {
			next.ServeHTTP(w, r)
			return
		}
		body, ok := cache.Load(name)
		if !ok {
			raw, err := fs.ReadFile(files, name)
			if err != nil {
				next.ServeHTTP(w, r) // the file server answers 404
				return
			}
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			zw.Write(raw)
			zw.Close()
			body, _ = cache.LoadOrStore(name, b.Bytes())
		}
		h := w.Header()
		h.Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		r.Header.Del("Range") // ranges of the encoded body would confuse
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body.([]byte)))
	})
}

func compressible(name string) bool {
	switch path.Ext(name) {
	case ".html", ".js", ".css", ".ttf", ".json", ".map":
		return true
	}
	return false
}

func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

func immutable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "..") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		next.ServeHTTP(w, r)
	})
}

// cdnPage is the page of a build without the bundles: the same GraphiQL
// release and settings, its modules from esm.sh.
func cdnPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		cdnTemplate.Execute(w, nil)
	})
}

var cdnTemplate = template.Must(template.New("playground").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Credit API playground</title>
<style>
body { margin: 0; height: 100vh; }
#graphiql { height: 100vh; }
.loading { display: flex; align-items: center; justify-content: center; height: 100%; font: 1.2rem system-ui, sans-serif; }
</style>
<link rel="stylesheet" href="https://esm.sh/graphiql@5.4.0/dist/style.css">
<script type="importmap">
{
  "imports": {
    "react": "https://esm.sh/react@19.2.0",
    "react/": "https://esm.sh/react@19.2.0/",
    "react-dom": "https://esm.sh/react-dom@19.2.0",
    "react-dom/": "https://esm.sh/react-dom@19.2.0/",
    "graphiql": "https://esm.sh/graphiql@5.4.0?standalone&external=react,react-dom,@graphiql/react,graphql",
    "graphiql/": "https://esm.sh/graphiql@5.4.0/",
    "@graphiql/react": "https://esm.sh/@graphiql/react@0.39.1?standalone&external=react,react-dom,graphql,@graphiql/toolkit,@emotion/is-prop-valid",
    "@graphiql/toolkit": "https://esm.sh/@graphiql/toolkit@0.12.1?standalone&external=graphql",
    "graphql": "https://esm.sh/graphql@16.11.0",
    "@emotion/is-prop-valid": "data:text/javascript,"
  }
}
</script>
</head>
<body>
<div id="graphiql"><div class="loading">Loading GraphiQL from esm.sh… (this build does not embed it: run go generate ./internal/playground)</div></div>
<script type="module">
import React from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import 'graphiql/setup-workers/esm.sh';

const url = new URL('/graphql', location.href).href;
const headers = JSON.stringify({ Authorization: 'Bearer PASTE-YOUR-KEY-HERE' }, null, 2);
createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, {
  fetcher: createGraphiQLFetcher({ url, subscriptionUrl: url.replace(/^http/, 'ws') }),
  defaultHeaders: headers,
  initialHeaders: headers,
  initialQuery: new URLSearchParams(location.search).get('query') ?? undefined,
  isHeadersEditorEnabled: true,
}));
</script>
</body>
</html>
`))
