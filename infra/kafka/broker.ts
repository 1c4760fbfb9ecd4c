/**
 * A Kafka broker of a test's own: start.sh and stop.sh of this folder on another port (storage in
 * .cache/kafka/run-PORT), for tests that kill the broker while the shared one stays up for the rest.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const HERE = import.meta.dirname;
const CACHE = process.env['SHOPSTREAM_KAFKA_HOME'] ?? join(HERE, '../../.cache/kafka');

export class TestBroker {
  readonly port: number;
  readonly bootstrap: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(port: number) {
    this.port = port;
    this.bootstrap = `127.0.0.1:${port}`;
    this.env = { ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) };
  }

  /** Starts it and waits until it answers. `fresh`: empty storage; `extraConfig`: lines added to server.properties. */
  start(options: { fresh?: boolean; extraConfig?: string } = {}): void {
    const env = { ...this.env, ...(options.fresh && { KAFKA_FRESH: '1' }), ...(options.extraConfig !== undefined && { KAFKA_EXTRA_CONFIG: options.extraConfig }) };
    execFileSync('bash', [join(HERE, 'start.sh')], { env, stdio: ['ignore', 'ignore', 'inherit'], timeout: 180_000 });
  }

  /** SIGKILL: no clean shutdown, as a crash or a power loss. */
  kill(): void {
    process.kill(Number(readFileSync(join(CACHE, `run-${this.port}/kafka.pid`), 'utf8').trim()), 'SIGKILL');
  }

  stop(): void {
    execFileSync('bash', [join(HERE, 'stop.sh')], { env: this.env, stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
  }
}
