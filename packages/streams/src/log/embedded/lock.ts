/**
 * The exclusive lock of a log directory: a file holding the owner's pid, created with O_EXCL.
 * A lock whose pid is no longer alive is taken over. Limits: a reused pid of a dead owner looks
 * alive (the lock is then refused, and the file must be removed by hand); two processes that take
 * over the same stale lock at the same instant can race (the window is between unlink and create).
 */
import fs from 'node:fs';
import path from 'node:path';
import { StreamsError, ErrorCodes } from '../../errors.ts';
import { pidAlive } from '../../pid.ts';

export const LOCK_FILE = 'LOCK';

export function acquireLock(dir: string): string {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${process.pid}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StreamsError(ErrorCodes.LOG_UNAVAILABLE, `cannot create the lock file ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // removed meanwhile: try again
    }
    const pid = Number.parseInt(text.trim(), 10);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
      throw new StreamsError(ErrorCodes.LOG_LOCKED, `log directory ${dir} is locked by process ${pid} (${file})`, {
        details: { pid, dir },
      });
    }
    // stale (dead owner, or an empty file from a crash during creation): take it over
    fs.rmSync(file, { force: true });
  }
  throw new StreamsError(ErrorCodes.LOG_LOCKED, `log directory ${dir}: could not take the lock ${file}`, { details: { dir } });
}

export function releaseLock(file: string): void {
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (Number.parseInt(text.trim(), 10) === process.pid) fs.rmSync(file, { force: true });
  } catch {
    // already gone
  }
}
