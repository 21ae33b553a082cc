// The playground page: GraphiQL, with subscriptions over graphql-ws, bundled
// by Vite into files the server embeds and serves itself (no CDN).
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';

const url = new URL('/graphql', location.href).href;
const subscriptionUrl = url.replace(/^http/, 'ws');

// The headers editor starts with the Authorization header to fill in. The
// toolkit sends the editor's headers with queries and mutations, and in
// connection_init of subscriptions, where the server reads the key.
const defaultHeaders = JSON.stringify({ Authorization: 'Bearer PASTE-YOUR-KEY-HERE' }, null, 2);

const defaultQuery = `# Paste your key into the Headers tab below, then run this query.
query Dashboard {
  customers(first: 10) {
    totalCount
    edges {
      node { id name credit used available usagePercent status }
    }
    pageInfo { hasNextPage endCursor }
  }
}
`;

// GraphiQL keeps headers out of its saved tabs unless "Persist headers" is on,
// but its history plugin saves every operation run with its headers, key
// included. This storage drops headers from saved history and favourites
// while the switch is off, so a key never outlives the page by default.
// GraphiQL names its keys 'graphiql:<name>' itself.
const headerless = new Set(['graphiql:queries', 'graphiql:favorites']);
const ours = () => Object.keys(localStorage).filter((k) => k.startsWith('graphiql:'));
const storage = {
  getItem: (key) => localStorage.getItem(key),
  removeItem: (key) => localStorage.removeItem(key),
  setItem(key, value) {
    if (headerless.has(key) && localStorage.getItem('graphiql:shouldPersistHeaders') !== 'true') {
      value = withoutHeaders(value);
    }
    localStorage.setItem(key, value);
  },
  clear: () => ours().forEach((k) => localStorage.removeItem(k)),
  get length() {
    return ours().length;
  },
};

function withoutHeaders(value) {
  try {
    const saved = JSON.parse(value);
    for (const list of Object.values(saved)) {
      if (Array.isArray(list)) list.forEach((item) => { delete item.headers; });
    }
    return JSON.stringify(saved);
  } catch {
    return value;
  }
}

// A link may open the playground on a query (?query=…): alert e-mails link
// to the one that shows their customer. GraphiQL opens it in a tab of its
// own, next to those kept from before.
const linkedQuery = new URLSearchParams(location.search).get('query') ?? undefined;

createRoot(document.getElementById('graphiql')).render(
  createElement(GraphiQL, {
    fetcher: createGraphiQLFetcher({ url, subscriptionUrl }),
    defaultHeaders,
    initialHeaders: defaultHeaders,
    defaultQuery,
    initialQuery: linkedQuery,
    isHeadersEditorEnabled: true,
    // Keys are not kept in the browser's storage: the settings dialog has a
    // "Persist headers" switch for whoever wants them kept.
    storage,
    inputValueDeprecation: true,
  }),
);
