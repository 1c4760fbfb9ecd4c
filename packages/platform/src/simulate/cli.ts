/**
 * `shopstream simulate`: plans a simulation, writes its truth, and sends it to a collector.
 *
 *   shopstream simulate --url http://127.0.0.1:8080 --write-key K [--merchant-id ID] [--currency EUR]
 *       [--write-key K2 --merchant-id ID2 --currency USD ...] | --config FILE
 *       [--seed 42] [--visitors 500] [--products 300] [--hours 3] [--bot-share 0.4] [--batch-size 50]
 *       [--rate 2000] [--concurrency 4] [--end-time ISO] [--truth truth.json] [--dry-run]
 *       [--catalogue-seed N] [--recs [--recs-model NAME] [--recs-limit N] [--experiment ID]]
 *
 * With --recs, shoppers react to the recommendations they are shown (react.ts): the truth then
 * depends on the API's answers, and is written once the run is over.
 * Progress goes to stderr every second; the summary to stdout. Exit code 0 when every action
 * succeeded, 1 when some failed, 2 on a usage error.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config.ts';
import { isPlatformError } from '../errors.ts';
import { planSimulation, resolveOptions, settleTruth, type GroundTruth, type SimulationOptions } from './plan.ts';
import { RECS_MODEL_NAMES, type RecsModelName, type RecsOptions } from './react.ts';
import { runSimulation } from './run.ts';

export interface SimulateIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: SimulateIo = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') };

export const SIMULATE_USAGE = `Usage:
  shopstream simulate --url URL --write-key KEY [--merchant-id ID] [--currency CUR] [--write-key KEY2 --merchant-id ID2 ...]
  shopstream simulate --url URL --config FILE            (merchants[] of the config: id, writeKey, currency)

Options:
  --url URL            the collector (default http://127.0.0.1:8080)
  --write-key KEY      a merchant's write key; repeat with --merchant-id (and --currency) for several merchants
  --merchant-id ID     the merchant id of the write key at the same position (default "demo" for a single key)
  --currency CUR       its currency (default USD, as for merchants created without one)
  --config FILE        a Shopstream config file; its merchants are used
  --seed N             seed of the plan (default 1); a re-run against the same platform needs another seed
  --visitors N         human visitors per merchant (default 500)
  --products N         products per merchant (default 300)
  --hours H            event-time window, ending now (default 3)
  --end-time ISO       end of the window (default now)
  --bot-share F        share of page and product views made by bots (default 0.4)
  --batch-size N       events per request (default 50)
  --rate N             events per second (default: as fast as possible)
  --concurrency N      parallel requests (default 4)
  --catalogue-seed N   seed of the shops (catalogue, popularity, bundles); default: from --seed.
                       Runs with other seeds and the same catalogue seed sell the same shops
  --recs               shoppers react to recommendations: each product view asks the recommendations
                       API (the write key), sends the widget's exposure, maybe a click and a purchase
  --recs-model NAME    the model asked (${RECS_MODEL_NAMES.join(', ')}; default ${RECS_MODEL_NAMES[0]})
  --recs-limit N       products shown per widget (default 4)
  --experiment ID      pass experiment=ID to the API (it assigns the variant); implies --recs
  --truth FILE         write the ground truth (JSON) there (with --recs: after the run, as sent)
  --dry-run            plan and write the truth, send nothing (with --recs: the truth leaves the widgets out)
`;

class UsageError extends Error {}

function num(name: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} ${v} is not ${integer ? 'a whole number' : 'a number'}`);
  return n;
}

/** Runs `shopstream simulate`; resolves with the exit code. */
export async function simulateCommand(args: string[], io: SimulateIo = defaultIo): Promise<number> {
  let options: SimulationOptions;
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(args).values;
    if (values.help) {
      io.out(SIMULATE_USAGE);
      return 0;
    }
    options = toOptions(values);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`simulate: ${(err as Error).message}\n\n${SIMULATE_USAGE}`);
      return 2;
    }
    if (isPlatformError(err)) {
      io.err(`error ${err.code}: ${err.message}`);
      return 2;
    }
    throw err;
  }

  const plan = planSimulation(options);
  const { actions } = plan;
  let truth: GroundTruth = plan.truth;
  const t = truth.totals;
  const now = Date.now();
  if (truth.window.end > now + 3_600_000 || truth.window.start < now - 30 * 86_400_000) {
    io.err('simulate: warning: the window is outside what the collector accepts by default (event times from 30 days ago to 1 hour ahead): the truth will not match');
  }
  const widgets = plan.recs?.widgets.length ?? 0;
  io.err(
    `simulate: planned ${t.messages} events in ${t.batches} batches and ${t.beacons} beacons for ${truth.params.merchants.length} merchant(s), ` +
      `${truth.window.startIso} → ${truth.window.endIso} (seed ${truth.params.seed})` +
      (plan.recs !== undefined ? `, and ${widgets} recommendation widgets (${plan.recs.options.model}${plan.recs.options.experiment !== null ? `, experiment ${plan.recs.options.experiment}` : ''})` : ''),
  );
  const writeTruth = () => {
    if (values.truth === undefined) return;
    writeFileSync(values.truth, JSON.stringify(truth, null, 1) + '\n');
    io.err(`simulate: truth written to ${values.truth}${truth.recs !== undefined && !truth.recs.settled ? ' (without the widgets, whose messages depend on the API)' : ''}`);
  };
  // Without widgets the truth is known before anything is sent; with them, once the run is over.
  if (plan.recs === undefined || values['dry-run']) writeTruth();
  const summary = () => {
    const t = truth.totals;
    io.out(`truth: ${t.humanEvents} human events, ${t.botEvents} bot events, ${t.invalid} invalid, ${truth.duplicates} duplicates, ${truth.orderResends} re-sent orders`);
    io.out(`truth: visitors ${t.visitors.human} human, ${t.visitors.crawler} crawlers, ${t.visitors.stealth_bot} stealth bots; ${t.sessions} sessions, ${t.orders} orders (conversion ${(t.conversion * 100).toFixed(2)}%), bot share of views ${(t.botViewShare * 100).toFixed(1)}%`);
    for (const [id, m] of Object.entries(truth.merchants)) {
      io.out(`truth: ${id}: ${m.orders} orders, revenue ${m.revenueMinor} minor units of ${m.currency}, ${m.sessions} sessions, ${m.humanEvents} human / ${m.botEvents} bot events`);
    }
    if (truth.recs?.settled === true) {
      for (const [id, r] of Object.entries(truth.recs.merchants)) {
        const variants = Object.entries(r.byVariant).map(([v, c]) => `${v}: ${c.exposures} exposures, ${c.clicks} clicks (${c.exposures === 0 ? 0 : ((c.clicks / c.exposures) * 100).toFixed(1)}%), ${c.orders} orders`);
        io.out(`recs: ${id}: ${r.widgets} widgets, ${r.answered} answered, ${r.exposures} exposures (${r.withComplement} with a complement), ${r.clicks} clicks, ${r.orders} orders from a click; ${variants.join('; ')}`);
      }
    }
  };
  if (values['dry-run']) {
    summary();
    return 0;
  }

  const url = values.url ?? 'http://127.0.0.1:8080';
  let sent = 0;
  let total = t.messages;
  const started = Date.now();
  const progress = () => {
    const s = (Date.now() - started) / 1000;
    io.err(`simulate: ${sent}/${total} events (${total === 0 ? 100 : Math.floor((sent / total) * 100)}%), ${s > 0 ? Math.round(sent / s) : 0} events/s`);
  };
  const timer = setInterval(progress, 1000);
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  let result;
  try {
    result = await runSimulation(actions, {
      baseUrl: url,
      rate: num('rate', values.rate, false),
      concurrency: num('concurrency', values.concurrency, true),
      signal: abort.signal,
      onProgress: (s, n) => {
        sent = s;
        total = n;
      },
    });
  } catch (err) {
    if (abort.signal.aborted) {
      io.err(`simulate: interrupted after ${sent}/${total} events; the truth no longer matches what was sent`);
      return 1;
    }
    throw err;
  } finally {
    clearInterval(timer);
    process.off('SIGINT', onSignal);
  }
  progress();
  if (plan.recs !== undefined) {
    truth = settleTruth(plan, result.widgets);
    writeTruth();
  }
  io.out(
    `sent ${result.events} events in ${result.requests} requests (${result.retries} retries) and ${result.beacons} beacons to ${url} in ${(result.durationMs / 1000).toFixed(1)} s; ` +
      `${result.rejectedByCollector} refused by the collector; ${result.failures} failures` +
      (plan.recs !== undefined ? `; ${result.widgets.length} widgets asked, ${result.recsFailures} without an answer` : ''),
  );
  summary();
  for (const e of result.errors) io.err(`simulate: failure: ${e}`);
  return result.failures === 0 && result.recsFailures === 0 ? 0 : 1;
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      url: { type: 'string' },
      'write-key': { type: 'string', multiple: true },
      'merchant-id': { type: 'string', multiple: true },
      currency: { type: 'string', multiple: true },
      config: { type: 'string' },
      seed: { type: 'string' },
      visitors: { type: 'string' },
      products: { type: 'string' },
      hours: { type: 'string' },
      'end-time': { type: 'string' },
      'bot-share': { type: 'string' },
      'batch-size': { type: 'string' },
      rate: { type: 'string' },
      concurrency: { type: 'string' },
      truth: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'catalogue-seed': { type: 'string' },
      recs: { type: 'boolean' },
      'recs-model': { type: 'string' },
      'recs-limit': { type: 'string' },
      experiment: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function toOptions(values: ReturnType<typeof parse>['values']): SimulationOptions {
  let merchants: SimulationOptions['merchants'];
  const keys = values['write-key'] ?? [];
  const ids = values['merchant-id'] ?? [];
  const currencies = values.currency ?? [];
  if (values.config !== undefined) {
    if (keys.length > 0) throw new UsageError('give merchants with --config or with --write-key, not both');
    const config = loadConfigFile(values.config);
    merchants = (config.merchants ?? []).map((m) => ({ id: m.id, writeKey: m.writeKey, currency: m.currency ?? 'USD' }));
    if (merchants.length === 0) throw new UsageError(`${values.config} has no merchants`);
  } else {
    if (keys.length === 0) throw new UsageError('--write-key (or --config) is required');
    if (ids.length !== keys.length && !(keys.length === 1 && ids.length === 0)) {
      throw new UsageError(`give one --merchant-id per --write-key (${keys.length} keys, ${ids.length} ids): the truth is per merchant id`);
    }
    if (currencies.length > 1 && currencies.length !== keys.length) throw new UsageError('give one --currency, or one per --write-key');
    merchants = keys.map((writeKey, i) => ({ id: ids[i] ?? 'demo', writeKey, currency: (currencies[i] ?? currencies[0] ?? 'USD').toUpperCase() }));
  }
  let endTime: number | undefined;
  if (values['end-time'] !== undefined) {
    endTime = Date.parse(values['end-time']);
    if (Number.isNaN(endTime)) throw new UsageError(`--end-time ${values['end-time']} is not a date-time`);
  }
  let recs: RecsOptions | undefined;
  if (values.recs === true || values.experiment !== undefined || values['recs-model'] !== undefined || values['recs-limit'] !== undefined) {
    if (values.recs !== true && values.experiment === undefined) throw new UsageError('--recs-model and --recs-limit go with --recs');
    const model = values['recs-model'];
    if (model !== undefined && !(RECS_MODEL_NAMES as readonly string[]).includes(model)) throw new UsageError(`--recs-model must be one of ${RECS_MODEL_NAMES.join(', ')}`);
    recs = {
      ...(model !== undefined && { model: model as RecsModelName }),
      ...(values.experiment !== undefined && { experiment: values.experiment }),
      ...(values['recs-limit'] !== undefined && { limit: num('recs-limit', values['recs-limit'], true)! }),
    };
  }
  try {
    const o: SimulationOptions = {
      merchants,
      seed: num('seed', values.seed, true),
      visitorsPerMerchant: num('visitors', values.visitors, true),
      products: num('products', values.products, true),
      hours: num('hours', values.hours, false),
      endTime,
      botShare: num('bot-share', values['bot-share'], false),
      batchSize: num('batch-size', values['batch-size'], true),
      catalogueSeed: num('catalogue-seed', values['catalogue-seed'], true),
      recs,
    };
    num('rate', values.rate, false);
    const concurrency = num('concurrency', values.concurrency, true);
    // One lane per worker, so that every worker has visitors of its own.
    if (concurrency !== undefined) o.lanes = Math.max(1, concurrency);
    for (const [k, v] of Object.entries(o)) if (v === undefined) delete (o as unknown as Record<string, unknown>)[k];
    resolveOptions(o);
    return o;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}
