/** A worker for threads.test.ts: echoes, throws, or exits on request; hands its input buffer back aside. */
import { serveThread } from '../../src/threads.ts';

interface Req {
  op: 'echo' | 'throw' | 'exit' | 'slow';
  n: number;
  buf?: ArrayBuffer;
}

serveThread<Req, { n: number; bytes: number }>(
  (req) => {
    if (req.op === 'throw') throw new Error(`refused ${req.n}`);
    if (req.op === 'exit') process.exit(3);
    if (req.op === 'slow') {
      const until = Date.now() + 50;
      while (Date.now() < until);
    }
    const aside = req.buf === undefined ? undefined : [req.buf];
    return { value: { n: req.n * 2, bytes: req.buf?.byteLength ?? 0 }, transfer: aside ?? [], aside };
  },
  (req) => ({ aside: req.buf === undefined ? undefined : ['from-throw'] }),
);
