// Vite builds the dashboard (index.html + src/) into dist/; the platform serves it at / (packages/platform/src/api/dashboard.ts).
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';

/** Writes dist/.built once the build is complete: build.ts compares the sources' times with it. */
function buildStamp(): Plugin {
  let outDir = '';
  return {
    name: 'shopstream-build-stamp',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir);
    },
    closeBundle() {
      writeFileSync(join(outDir, '.built'), `${new Date().toISOString()}\n`);
    },
  };
}

export default defineConfig({
  base: '/',
  plugins: [buildStamp()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The platform compresses (brotli, gzip) when it serves; the e2e test measures what is sent.
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
  },
});
