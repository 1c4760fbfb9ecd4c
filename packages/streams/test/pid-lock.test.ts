import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquirePidLock, pidAlive, releasePidLock } from '../src/pid-lock.ts';
import { ErrorCodes } from '../src/errors.ts';

function lockPath(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pid-lock-')), 'LOCK');
}

const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;

describe('pid-file locks', () => {
  it('refuses a lock held by another live process, naming it and the hint', async () => {
    const file = lockPath();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(file, `${other.pid}\n`);
      assert.throws(
        () => acquirePidLock(file, { what: 'state directory /x', hint: 'give each instance its own stateDir', reentrant: true }),
        (err: unknown) => {
          assert.ok(code('SHOP_ERR_LOG_LOCKED')(err));
          assert.match((err as Error).message, new RegExp(`state directory /x is locked by process ${other.pid} .*own stateDir`));
          return true;
        },
      );
      // Not released by someone who does not hold it.
      releasePidLock(file);
      assert.equal(fs.readFileSync(file, 'utf8').trim(), String(other.pid));
    } finally {
      other.kill('SIGKILL');
      await once(other, 'exit');
    }
    // Its owner is gone: taken over.
    assert.equal(pidAlive(other.pid!), false);
    acquirePidLock(file, { what: 'x' });
    assert.equal(fs.readFileSync(file, 'utf8').trim(), String(process.pid));
    releasePidLock(file);
    assert.equal(fs.existsSync(file), false);
  });

  it('refuses a second hold in the same process unless reentrant', () => {
    const file = lockPath();
    acquirePidLock(file, { what: 'log directory d' });
    assert.throws(() => acquirePidLock(file, { what: 'log directory d' }), code('SHOP_ERR_LOG_LOCKED'));
    acquirePidLock(file, { what: 'state directory s', reentrant: true });
    assert.equal(fs.readFileSync(file, 'utf8').trim(), String(process.pid));
    releasePidLock(file);
  });

  it('says which error when the lock file cannot be created at all', () => {
    const missing = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pid-lock-')), 'no-such-dir', 'LOCK');
    assert.throws(() => acquirePidLock(missing, { what: 'log directory d' }), code('SHOP_ERR_LOG_UNAVAILABLE'));
    assert.throws(() => acquirePidLock(missing, { what: 'state directory s', ioError: ErrorCodes.STATE_STORE }), (err: unknown) => {
      assert.ok(code('SHOP_ERR_STATE_STORE')(err));
      assert.match((err as Error).message, /state directory s: cannot create the lock file/);
      return true;
    });
  });

  it('takes over an empty lock file left by a crash during creation', () => {
    const file = lockPath();
    fs.writeFileSync(file, '');
    acquirePidLock(file, { what: 'x' });
    assert.equal(fs.readFileSync(file, 'utf8').trim(), String(process.pid));
    releasePidLock(file);
  });
});
