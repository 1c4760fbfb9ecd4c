/**
 * A parse thread of the collector (server.ts `parseThreads`): runs `prepareIngest` on request
 * bodies, so that the request thread keeps only HTTP and the log write. The body comes in
 * transferred; the decoded bytes (and any values serialised again) go back transferred.
 */
import { serveThread } from '../threads.ts';
import { prepareIngest, type PrepareInput, type Prepared } from './prepare.ts';

serveThread<PrepareInput, Prepared>((input) => {
  const p = prepareIngest(input);
  if (p.kind !== 'events') return { value: p };
  const transfer: ArrayBuffer[] = [];
  p.sources = p.sources.map((s) => {
    // A buffer moves only when it is the whole of its ArrayBuffer (not a slice of Node's shared pool).
    const own = s.byteOffset === 0 && s.byteLength === s.buffer.byteLength ? s : s.slice();
    transfer.push(own.buffer as ArrayBuffer);
    return own;
  });
  for (const a of [p.index, p.source, p.start, p.end, p.own]) if (!transfer.includes(a.buffer as ArrayBuffer)) transfer.push(a.buffer as ArrayBuffer);
  return { value: p, transfer };
});
