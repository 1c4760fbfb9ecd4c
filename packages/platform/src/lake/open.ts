/**
 * The lake's storage from the configuration (`lake.storage`, docs/lake.md): the local folder
 * `lake.dir` (default: the data folder), or S3.
 */
import { resolve } from 'node:path';
import { S3Storage } from './s3.ts';
import { LocalStorage, type LakeStorage } from './storage.ts';

export type LakeStorageConfig =
  | { kind: 'local' }
  | {
      kind: 's3';
      bucket: string;
      /** Key prefix of the storage root (the lake is under `<prefix>lake/…`). */
      prefix?: string;
      /** An S3-compatible endpoint, e.g. http://127.0.0.1:9000. */
      endpoint?: string;
      region?: string;
      forcePathStyle?: boolean;
    };

export interface LakeConfigPart {
  dir?: string;
  storage?: LakeStorageConfig;
}

/** Opens the configured lake storage. */
export function openLakeStorage(lake: LakeConfigPart | undefined, dataDir: string): LakeStorage {
  const s = lake?.storage;
  if (s?.kind === 's3') {
    return new S3Storage({
      bucket: s.bucket,
      ...(s.prefix !== undefined && { prefix: s.prefix }),
      ...(s.endpoint !== undefined && { endpoint: s.endpoint }),
      ...(s.region !== undefined && { region: s.region }),
      ...(s.forcePathStyle !== undefined && { forcePathStyle: s.forcePathStyle }),
    });
  }
  return new LocalStorage(resolve(lake?.dir ?? dataDir));
}

/** Releases what the storage holds (the S3 client's connections). */
export function closeLakeStorage(storage: LakeStorage): void {
  if (storage instanceof S3Storage) storage.close();
}
