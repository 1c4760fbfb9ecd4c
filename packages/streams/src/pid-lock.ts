/**
 * Pid-file locks, for the embedded log's directory and a StreamsApp's state directory: a file
 * holding its owner's pid, created with O_EXCL. A lock whose owner is gone (a crash) is taken over.
 * Limits: a reused pid of a dead owner looks alive (the lock is then refused, and the file must be
 * removed by hand); two processes that take over the same stale lock at the same instant can race
 * (the window is between unlink and create).
 */
import fs from 'node:fs';
import { StreamsError, ErrorCodes, type ErrorCode, type ErrorSpec } from './errors.ts';

/** Whether a process with this pid exists (one owned by another user counts). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface PidLockOptions {
  /** What the lock guards, for errors: e.g. `log directory /data/log`. */
  what: string;
  /** Appended to the error when a live process holds the lock: what to do about it. */
  hint?: string;
  /**
   * Take over a lock that this very process holds (an owner abandoned without closing, as after an
   * in-process crash). Default false: a second open in the same process is refused like any other.
   */
  reentrant?: boolean;
  /** The error when the lock file cannot be created at all (permissions, a full disk). Default LOG_UNAVAILABLE. */
  ioError?: ErrorSpec & { code: ErrorCode };
}

/** Takes the lock `file`; throws LOG_LOCKED when a live process holds it. */
export function acquirePidLock(file: string, options: PidLockOptions): void {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${process.pid}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StreamsError(options.ioError ?? ErrorCodes.LOG_UNAVAILABLE, `${options.what}: cannot create the lock file ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue; // removed meanwhile: try again
    }
    const pid = Number.parseInt(text.trim(), 10);
    const mine = pid === process.pid && options.reentrant === true;
    if (Number.isInteger(pid) && pid > 0 && !mine && pidAlive(pid)) {
      throw new StreamsError(ErrorCodes.LOG_LOCKED, `${options.what} is locked by process ${pid} (${file})${options.hint === undefined ? '' : `; ${options.hint}`}`, {
        details: { pid, file },
      });
    }
    // stale (a dead owner, or an empty file from a crash during creation): take it over
    fs.rmSync(file, { force: true });
  }
  throw new StreamsError(ErrorCodes.LOG_LOCKED, `${options.what}: could not take the lock ${file}`, { details: { file } });
}

/** Removes the lock `file` if this process holds it. */
export function releasePidLock(file: string): void {
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (Number.parseInt(text.trim(), 10) === process.pid) fs.rmSync(file, { force: true });
  } catch {
    // already gone
  }
}
