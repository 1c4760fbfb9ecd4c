/**
 * The lake on S3 (or any S3-compatible store: MinIO, Ceph, R2, GCS's XML API …) through
 * `@aws-sdk/client-s3`. Credentials come from the SDK's default chain (environment variables,
 * shared config and credentials files, SSO, instance or container roles).
 *
 * Visibility is S3's own: an object appears under its key only when it is complete. `stage(name)`
 * gives a file in a local scratch folder; `publish()` uploads it with one PutObject when it is at
 * most `partSize` bytes, else with a multipart upload (CreateMultipartUpload, UploadPart …,
 * CompleteMultipartUpload): until the completion nothing is visible under the key, and a failed
 * upload is aborted. A crash during a multipart upload leaves an unfinished upload (invisible, but
 * billed for its parts): `removeStaleTemporaries` aborts those older than a threshold, and deletes
 * stale scratch files. Objects are written under `<prefix><name>`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { checkName, isTemporaryName, type LakeStorage, type StagedObject } from './storage.ts';

export interface S3StorageOptions {
  bucket: string;
  /** Key prefix of the storage root, e.g. `shopstream/` (a `/` is added when missing). Default: the bucket's root. */
  prefix?: string;
  /** An S3-compatible endpoint, e.g. http://127.0.0.1:9000. Default: AWS's for the region. */
  endpoint?: string;
  /** Default: the SDK's (AWS_REGION, the config file), else us-east-1. */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Use this client instead of building one (tests). */
  client?: S3Client;
  /** Local folder for staged files. Default `<os tmpdir>/shopstream-lake-s3`. */
  scratchDir?: string;
  /** Objects up to this size go in one PutObject; larger ones in parts of this size. Default 8 MiB (S3's minimum part is 5 MiB). */
  partSize?: number;
  /** Parts uploaded at once. Default 4. */
  partConcurrency?: number;
  /** Test hook: called after each part of a multipart upload (throwing simulates a crash there). */
  afterPart?: (name: string, partNumber: number) => void | Promise<void>;
}

const MiB = 1024 * 1024;

export class S3Storage implements LakeStorage {
  readonly bucket: string;
  /** The key prefix, '' or ending in '/'. */
  readonly prefix: string;
  readonly client: S3Client;
  readonly scratchDir: string;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly afterPart: S3StorageOptions['afterPart'];

  constructor(o: S3StorageOptions) {
    if (o.bucket === '') throw new Error('S3Storage: bucket is empty');
    this.bucket = o.bucket;
    this.prefix = o.prefix === undefined || o.prefix === '' ? '' : o.prefix.endsWith('/') ? o.prefix : `${o.prefix}/`;
    if (this.prefix.startsWith('/')) throw new Error(`S3Storage: the prefix ${JSON.stringify(o.prefix)} must not start with /`);
    this.client =
      o.client ??
      new S3Client({
        ...(o.endpoint !== undefined && { endpoint: o.endpoint }),
        region: o.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
        ...(o.forcePathStyle !== undefined && { forcePathStyle: o.forcePathStyle }),
      });
    this.scratchDir = o.scratchDir ?? join(tmpdir(), 'shopstream-lake-s3');
    this.partSize = Math.max(1, Math.floor(o.partSize ?? 8 * MiB));
    this.partConcurrency = Math.max(1, o.partConcurrency ?? 4);
    this.afterPart = o.afterPart;
  }

  private key(name: string): string {
    checkName(name);
    return `${this.prefix}${name}`;
  }

  locate(name: string): string {
    return `s3://${this.bucket}/${this.key(name)}`;
  }

  async stage(name: string): Promise<StagedObject> {
    const key = this.key(name);
    mkdirSync(this.scratchDir, { recursive: true });
    // A flat scratch name that still says what it is for (and is a temporary name).
    const localPath = join(this.scratchDir, `${name.slice(name.lastIndexOf('/') + 1)}.tmp-${randomBytes(6).toString('hex')}`);
    return {
      name,
      localPath,
      publish: async () => {
        try {
          await this.upload(name, key, localPath);
        } finally {
          await rm(localPath, { force: true });
        }
      },
      discard: async () => {
        await rm(localPath, { force: true });
      },
    };
  }

  private async upload(name: string, key: string, localPath: string): Promise<void> {
    const size = (await stat(localPath)).size;
    if (size <= this.partSize) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: await readFile(localPath), ContentLength: size }));
      return;
    }
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw new Error(`S3: CreateMultipartUpload of ${key} returned no upload id`);
    const file = await open(localPath, 'r');
    try {
      const count = Math.ceil(size / this.partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          const length = Math.min(this.partSize, size - i * this.partSize);
          const body = Buffer.alloc(length);
          await file.read(body, 0, length, i * this.partSize);
          const r = await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: i + 1, Body: body, ContentLength: length }));
          parts[i] = { ETag: r.ETag, PartNumber: i + 1 };
          await this.afterPart?.(name, i + 1);
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.partConcurrency, count) }, worker));
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
      throw err;
    } finally {
      await file.close();
    }
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.prefix}${prefix}`, ...(token !== undefined && { ContinuationToken: token }) }));
      for (const o of r.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(this.prefix)) continue;
        const name = o.Key.slice(this.prefix.length);
        if (!isTemporaryName(name)) out.push(name);
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out.sort();
  }

  async read(name: string): Promise<Buffer> {
    const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
    if (r.Body === undefined) return Buffer.alloc(0);
    return Buffer.from(await r.Body.transformToByteArray());
  }

  async delete(name: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(name) }));
  }

  /** Unfinished multipart uploads under the prefix: key (without the prefix), upload id, start. */
  async pendingUploads(): Promise<Array<{ name: string; uploadId: string; initiated: number }>> {
    const out: Array<{ name: string; uploadId: string; initiated: number }> = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const r = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, ...(keyMarker !== undefined && { KeyMarker: keyMarker }), ...(idMarker !== undefined && { UploadIdMarker: idMarker }) }),
      );
      for (const u of r.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined) continue;
        out.push({ name: u.Key.slice(this.prefix.length), uploadId: u.UploadId, initiated: u.Initiated?.getTime() ?? 0 });
      }
      if (!r.IsTruncated) return out;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  /**
   * Aborts multipart uploads started more than `olderThanMs` ago (a crashed writer's; a live one's
   * is younger), and deletes staged scratch files as old. Returns the object names and scratch files.
   */
  async removeStaleTemporaries(olderThanMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const u of await this.pendingUploads()) {
      if (now - u.initiated < olderThanMs) continue;
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: `${this.prefix}${u.name}`, UploadId: u.uploadId })).catch(() => undefined);
      removed.push(u.name);
    }
    let files: string[] = [];
    try {
      files = await readdir(this.scratchDir);
    } catch {
      files = [];
    }
    for (const f of files) {
      if (!isTemporaryName(f)) continue;
      const path = join(this.scratchDir, f);
      const s = await stat(path).catch(() => undefined);
      if (s === undefined || now - s.mtimeMs < olderThanMs) continue;
      await rm(path, { force: true });
      removed.push(path);
    }
    return removed;
  }

  close(): void {
    this.client.destroy();
  }
}
