/**
 * A real S3-compatible server for the lake's tests: Adobe's S3Mock (infra/s3/start.sh fetches its
 * jar from Maven Central once), started by the test on free ports and stopped at the end. Set
 * SHOPSTREAM_TEST_S3_ENDPOINT (e.g. http://127.0.0.1:9590, from `bash infra/s3/start.sh`) to use a
 * running server instead; it must have the bucket `lake`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { S3Storage, type S3StorageOptions } from '../../src/lake/s3.ts';
import { tempDir, unique } from '../helpers.ts';

const ROOT = resolve(import.meta.dirname, '../../../..');
export const S3_BUCKET = 'lake';

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** A storage under a fresh key prefix (one per test). */
  storage(options?: Partial<S3StorageOptions>): S3Storage;
  stop(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => done(false));
    s.listen(port, '127.0.0.1', () => s.close(() => done(true)));
  });
}

/** Two free consecutive ports (HTTP, then S3Mock's HTTPS). */
async function freePorts(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error('no two free consecutive ports');
}

function sh(args: string[]): string {
  const r = spawnSync('bash', args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bash ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
}

export async function startS3(): Promise<TestS3> {
  process.env['AWS_ACCESS_KEY_ID'] ??= 'shopstream-test';
  process.env['AWS_SECRET_ACCESS_KEY'] ??= 'shopstream-test-secret';
  process.env['AWS_REGION'] ??= 'us-east-1';
  let child: ChildProcess | undefined;
  let data: { dir: string; cleanup: () => void } | undefined;
  let endpoint = process.env['SHOPSTREAM_TEST_S3_ENDPOINT'];
  const killChild = () => child?.kill('SIGKILL');
  if (endpoint === undefined) {
    const jar = sh(['infra/s3/start.sh', '--jar']);
    const port = await freePorts();
    data = tempDir('shopstream-s3mock-');
    const jvm = sh(['infra/s3/jvm-args.sh']).split(/\s+/);
    const app = sh(['infra/s3/jvm-args.sh', '--app', String(port), data.dir, S3_BUCKET]).split(/\s+/);
    let output = '';
    child = spawn('java', [...jvm, '-jar', jar, ...app], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (output = (output + String(d)).slice(-20_000)));
    child.stderr!.on('data', (d) => (output = (output + String(d)).slice(-20_000)));
    process.once('exit', killChild);
    endpoint = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 180_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`S3Mock exited: ${output}`);
      const ok = await fetch(`${endpoint}/`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`S3Mock did not start: ${output}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const url = endpoint;
  const scratch = tempDir('shopstream-s3-scratch-');
  return {
    endpoint: url,
    bucket: S3_BUCKET,
    storage: (options = {}) => new S3Storage({ bucket: S3_BUCKET, prefix: `${unique('t')}/`, endpoint: url, forcePathStyle: true, scratchDir: join(scratch.dir, unique('s')), ...options }),
    async stop() {
      if (child !== undefined && child.exitCode === null) {
        const exited = new Promise((r) => child!.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child!.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      process.off('exit', killChild);
      data?.cleanup();
      scratch.cleanup();
    },
  };
}
