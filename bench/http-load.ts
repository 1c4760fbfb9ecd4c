/**
 * A fixed-rate GET load in its own process (so that it does not share the server's event loop):
 *   node bench/http-load.ts <baseUrl> <rate> <seconds> <authorization> <path> [<path> …]
 * Prints one JSON line: autocannon's latency percentiles (ms), requests/s, non-2xx and errors.
 */
import autocannon from 'autocannon';

const [url, rate, seconds, authorization, ...paths] = process.argv.slice(2);
let n = 0;
const r = await autocannon({
  url: url!,
  connections: 16,
  overallRate: Number(rate),
  duration: Number(seconds),
  requests: [{ method: 'GET', headers: { authorization: authorization! }, setupRequest: (req) => ({ ...req, path: paths[n++ % paths.length]! }) }],
});
console.log(JSON.stringify({ p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, rps: r.requests.average, non2xx: r.non2xx, errors: r.errors }));
