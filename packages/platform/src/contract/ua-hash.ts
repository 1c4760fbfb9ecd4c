/**
 * The user-agent hash that binds a beacon validation to a browser: base64url of the first 16 bytes
 * of SHA-256("user-agent\0" + userAgent). The collector writes it on validation events; the pipeline
 * computes it from an event's `context.userAgent`, so that a validation by one browser does not
 * vouch for events sent with another User-Agent under the same anonymousId.
 */
import { createHash } from 'node:crypto';

export function hashUserAgent(userAgent: string): string {
  return createHash('sha256').update('user-agent').update('\0').update(userAgent, 'utf8').digest().subarray(0, 16).toString('base64url');
}
