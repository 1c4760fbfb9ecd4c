/**
 * The commit journal and the checkpoint of the embedded log.
 *
 * The journal is an append-only file of crc-framed entries. Each entry is one commit: the new
 * committed end of every partition it wrote, and the group offsets it committed. A commit is
 * committed exactly when its entry is complete on disk. The checkpoint is a JSON file, replaced
 * atomically (temp file, fsync, rename), holding every partition's end and every group offset up
 * to a journal sequence number; the journal is emptied after each checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StreamsError, ErrorCodes } from '../../errors.ts';
import { decodeJournal, encodeJournalEntry } from './format.ts';
import { fsyncDir } from './partition.ts';

/** [topic, partition, end offset, segment base offset, byte position in the segment] */
export type EndTuple = [string, number, number, number, number];
/** [groupId, topic, partition, offset, metadata?] */
export type GroupOffsetTuple = [string, string, number, number, string?];

export interface JournalEntry {
  /** Sequence number; consecutive. */
  s: number;
  p: EndTuple[];
  g?: GroupOffsetTuple[];
}

export interface CheckpointData {
  version: 1;
  /** Last journal sequence number included. */
  seq: number;
  ends: EndTuple[];
  groups: GroupOffsetTuple[];
}

export const CHECKPOINT_FILE = 'checkpoint.json';
export const JOURNAL_FILE = 'journal';

export function readCheckpoint(dir: string): CheckpointData | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let data: CheckpointData;
  try {
    data = JSON.parse(text) as CheckpointData;
  } catch (err) {
    throw new StreamsError(ErrorCodes.LOG_CORRUPT, `${path.join(dir, CHECKPOINT_FILE)} is not valid JSON`, { cause: err });
  }
  if (data.version !== 1 || !Array.isArray(data.ends) || !Array.isArray(data.groups) || typeof data.seq !== 'number') {
    throw new StreamsError(ErrorCodes.LOG_CORRUPT, `${path.join(dir, CHECKPOINT_FILE)} has an unknown shape`);
  }
  return data;
}

export function writeCheckpoint(dir: string, data: CheckpointData, durable: boolean): void {
  const file = path.join(dir, CHECKPOINT_FILE);
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeFileSync(fd, JSON.stringify(data));
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  if (durable) fsyncDir(dir);
}

export class Journal {
  readonly file: string;
  readonly fd: number;
  size: number;

  constructor(dir: string) {
    this.file = path.join(dir, JOURNAL_FILE);
    this.fd = fs.openSync(this.file, fs.existsSync(this.file) ? 'r+' : 'w+');
    this.size = fs.fstatSync(this.fd).size;
  }

  /** The valid entries (a torn or corrupt tail ends the journal). */
  readEntries(): JournalEntry[] {
    const buf = Buffer.allocUnsafe(this.size);
    let got = 0;
    while (got < this.size) {
      const n = fs.readSync(this.fd, buf, got, this.size - got, got);
      if (n === 0) break;
      got += n;
    }
    const { entries } = decodeJournal(buf.subarray(0, got));
    return entries as JournalEntry[];
  }

  /** Appends one entry with one write. On error, cuts the file back and throws. */
  append(entry: JournalEntry): void {
    const buf = encodeJournalEntry(entry);
    const start = this.size;
    try {
      let done = 0;
      while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, start + done);
    } catch (err) {
      try {
        fs.ftruncateSync(this.fd, start);
      } catch {
        // recovery ignores a torn tail
      }
      throw err;
    }
    this.size = start + buf.length;
  }

  truncate(durable: boolean): void {
    fs.ftruncateSync(this.fd, 0);
    if (durable) fs.fsyncSync(this.fd);
    this.size = 0;
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}
