/**
 * Request bodies: raw bytes to JSON, strictly. A body must be UTF-8 (no replacement characters
 * smuggled in), may be gzip- or deflate-compressed (Segment's server libraries compress), and stays
 * within the route's size limit after decompression too.
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import { PlatformError, PlatformErrors, type PlatformErrorSpecOf } from '../errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The decoded bytes of a body (decompressed) and its parsed value. */
export interface DecodedBody {
  bytes: Buffer;
  value: unknown;
}

export function decodeBody(raw: Buffer, contentEncoding: string | undefined, limitBytes: number, tooLarge: PlatformErrorSpecOf = PlatformErrors.REQUEST_TOO_LARGE): DecodedBody {
  let bytes = raw;
  const enc = contentEncoding?.trim().toLowerCase();
  if (enc && enc !== 'identity') {
    if (enc !== 'gzip' && enc !== 'deflate') {
      throw new PlatformError(PlatformErrors.UNSUPPORTED_ENCODING, `Content-Encoding ${JSON.stringify(enc)} is not supported; send gzip, deflate or an uncompressed body.`);
    }
    try {
      bytes = enc === 'gzip' ? gunzipSync(raw, { maxOutputLength: limitBytes }) : inflateSync(raw, { maxOutputLength: limitBytes });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new PlatformError(tooLarge, `The decompressed body is larger than ${limitBytes} bytes.`);
      }
      throw new PlatformError(PlatformErrors.INVALID_REQUEST, `The body is not valid ${enc} data.`);
    }
  }
  // A UTF-8 byte order mark is tolerated and dropped, so that the bytes kept are plain JSON.
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  if (bytes.length === 0) throw new PlatformError(PlatformErrors.INVALID_REQUEST, 'The request has no body; send a JSON object.');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new PlatformError(PlatformErrors.INVALID_UTF8, 'The body is not valid UTF-8; encode JSON as UTF-8.');
  }
  try {
    return { bytes, value: JSON.parse(text) };
  } catch (err) {
    throw new PlatformError(PlatformErrors.INVALID_JSON, `The body is not valid JSON: ${(err as Error).message}.`);
  }
}

/** Deepest nesting of objects and arrays accepted in a body (a batch is 2 levels before its events). */
export const MAX_JSON_DEPTH = 64;

/**
 * True when JSON text nests objects and arrays deeper than `limit` (brackets inside strings do not
 * count). Deep nesting is refused up front: it costs nothing to send and would overflow the stack of
 * every later JSON.stringify of the event.
 */
export function exceedsDepth(b: Uint8Array, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** The write key from HTTP Basic auth (the user name; the password is empty), if any. */
export function basicAuthUser(header: string | undefined): string | undefined {
  if (!header || header.length > 1024) return undefined;
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space).toLowerCase() !== 'basic') return undefined;
  const decoded = Buffer.from(header.slice(space + 1).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = colon < 0 ? decoded : decoded.slice(0, colon);
  return user.length > 0 ? user : undefined;
}
