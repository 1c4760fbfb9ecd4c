/**
 * Builds the dashboard with Vite when `dist/` is missing or older than its sources. `npm start`
 * and the tests call `ensureDashboardBuilt()`, so the platform always serves a fresh build;
 * `npm run build -w @shopstream/dashboard` builds it by hand.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const DASHBOARD_DIR = import.meta.dirname;
export const DASHBOARD_DIST = join(DASHBOARD_DIR, 'dist');
/** Written by vite.config.ts's plugin after a complete build: its time is the build's. */
const STAMP = join(DASHBOARD_DIST, '.built');

/** The files the build reads (the platform's currency table is bundled into the page). */
function sources(): string[] {
  const out = [join(DASHBOARD_DIR, 'index.html'), join(DASHBOARD_DIR, 'vite.config.ts'), join(DASHBOARD_DIR, 'package.json'), join(DASHBOARD_DIR, '../platform/src/contract/currencies.ts')];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(join(DASHBOARD_DIR, 'src'));
  return out.filter((p) => existsSync(p));
}

/** True when dist/ holds a complete build newer than every source. */
export function dashboardIsFresh(): boolean {
  if (!existsSync(STAMP) || !existsSync(join(DASHBOARD_DIST, 'index.html'))) return false;
  const built = statSync(STAMP).mtimeMs;
  return sources().every((p) => statSync(p).mtimeMs <= built);
}

export interface EnsureOptions {
  /** Progress lines (default: console.log). */
  log?: (line: string) => void;
  /** Build even when dist/ is fresh. */
  force?: boolean;
}

/** Builds the dashboard if it is missing or stale. Resolves with whether it built, and how long it took. */
export async function ensureDashboardBuilt(options: EnsureOptions = {}): Promise<{ built: boolean; ms: number }> {
  const log = options.log ?? ((line: string) => console.log(line));
  if (!options.force && dashboardIsFresh()) return { built: false, ms: 0 };
  const started = Date.now();
  log(`› building the dashboard (vite build ${DASHBOARD_DIR}) …`);
  const { build } = await import('vite');
  await build({ root: DASHBOARD_DIR, configFile: join(DASHBOARD_DIR, 'vite.config.ts'), logLevel: 'warn', clearScreen: false });
  const ms = Date.now() - started;
  log(`› dashboard built in ${ms} ms (${DASHBOARD_DIST})`);
  return { built: true, ms };
}

// `node packages/dashboard/build.ts [--force]`
if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  await ensureDashboardBuilt({ force: process.argv.includes('--force') });
}
