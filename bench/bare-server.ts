/**
 * The floor of the HTTP latency benches: a bare Fastify server, in its own process, whose one route
 * answers a constant. What a fixed-rate load from bench/http-load.ts measures against it is the
 * machine's and the harness's own latency, with no application behind it.
 * Prints `READY <port>` when listening; exits on SIGTERM.
 */
import Fastify from 'fastify';

const app = Fastify();
app.get('/healthz', async () => ({ status: 'ok' }));
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`READY ${typeof address === 'object' && address !== null ? address.port : ''}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
