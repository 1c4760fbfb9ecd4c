/**
 * The Meta side of bench/capi.bench.ts, in its own process (the forwarder and Meta's stand-in must
 * not share an event loop). Starts @shopstream/meta-sim with the pixels given, the latency given and
 * body recording off; prints `READY <url>`. Faults and statistics go through its HTTP control API
 * (/_sim/faults, /_sim/stats). Exits on SIGTERM.
 *   node bench/meta-sim-server.ts <latencyMs> <pixel:token> [<pixel:token> …]
 */
import { startMetaSim } from '../packages/meta-sim/src/index.ts';

const [latency, ...pixels] = process.argv.slice(2);
const sim = await startMetaSim({
  latencyMs: Number(latency ?? 0),
  record: false,
  pixels: pixels.map((p) => {
    const [pixelId, accessToken] = p.split(':');
    return { pixelId: pixelId!, accessToken: accessToken! };
  }),
});
console.log(`READY ${sim.url}`);
process.on('SIGTERM', () => void sim.close().then(() => process.exit(0)));
