import { defineConfig } from 'vite';

// The build lands in ../dist, which the Go package embeds. Relative asset
// paths keep the page working behind a path prefix.
export default defineConfig({
  base: './',
  logLevel: 'error',
  build: {
    outDir: '../dist/graphiql',
    emptyOutDir: true,
    chunkSizeWarningLimit: 8192,
    reportCompressedSize: false,
  },
});
