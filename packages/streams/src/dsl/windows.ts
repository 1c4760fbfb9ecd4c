/**
 * Window definitions, each with an explicit grace period: records later than `grace` (in stream
 * time) after their window's end are dropped and counted, as in Kafka Streams.
 */
import { StreamsError, ErrorCodes } from '../errors.ts';

export interface TimeWindow {
  start: number;
  end: number;
}

function checkMs(name: string, v: number, min = 0): void {
  if (!Number.isFinite(v) || v < min || !Number.isInteger(v)) {
    throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, `${name} must be an integer number of ms >= ${min}, got ${v}`);
  }
}

/** Tumbling (advance = size) or hopping (advance < size) windows aligned to the epoch. */
export class TimeWindows {
  readonly sizeMs: number;
  readonly advanceMs: number;
  readonly graceMs: number;

  private constructor(sizeMs: number, advanceMs: number, graceMs: number) {
    checkMs('window size', sizeMs, 1);
    checkMs('window advance', advanceMs, 1);
    checkMs('grace', graceMs);
    if (advanceMs > sizeMs) throw new StreamsError(ErrorCodes.INVALID_ARGUMENT, 'window advance must not exceed its size');
    this.sizeMs = sizeMs;
    this.advanceMs = advanceMs;
    this.graceMs = graceMs;
  }

  static ofSizeAndGrace(sizeMs: number, graceMs: number): TimeWindows {
    return new TimeWindows(sizeMs, sizeMs, graceMs);
  }

  static ofSizeWithNoGrace(sizeMs: number): TimeWindows {
    return new TimeWindows(sizeMs, sizeMs, 0);
  }

  /** Hopping windows. */
  advanceBy(advanceMs: number): TimeWindows {
    return new TimeWindows(this.sizeMs, advanceMs, this.graceMs);
  }

  /** The windows that contain `timestamp`, oldest first. */
  windowsFor(timestamp: number): TimeWindow[] {
    const out: TimeWindow[] = [];
    let start = Math.max(0, timestamp - this.sizeMs + this.advanceMs);
    start -= start % this.advanceMs;
    for (; start <= timestamp; start += this.advanceMs) {
      if (timestamp < start + this.sizeMs) out.push({ start, end: start + this.sizeMs });
    }
    return out;
  }
}

/** Session windows: a key's session ends after `gap` without records. */
export class SessionWindows {
  readonly gapMs: number;
  readonly graceMs: number;

  private constructor(gapMs: number, graceMs: number) {
    checkMs('inactivity gap', gapMs, 1);
    checkMs('grace', graceMs);
    this.gapMs = gapMs;
    this.graceMs = graceMs;
  }

  static ofInactivityGapAndGrace(gapMs: number, graceMs: number): SessionWindows {
    return new SessionWindows(gapMs, graceMs);
  }

  static ofInactivityGapWithNoGrace(gapMs: number): SessionWindows {
    return new SessionWindows(gapMs, 0);
  }
}

/** Stream-stream join windows: records join when |t1 - t2| <= timeDifference (or before/after asymmetric). */
export class JoinWindows {
  readonly beforeMs: number;
  readonly afterMs: number;
  readonly graceMs: number;

  private constructor(beforeMs: number, afterMs: number, graceMs: number) {
    checkMs('join window before', beforeMs);
    checkMs('join window after', afterMs);
    checkMs('grace', graceMs);
    this.beforeMs = beforeMs;
    this.afterMs = afterMs;
    this.graceMs = graceMs;
  }

  static ofTimeDifferenceAndGrace(diffMs: number, graceMs: number): JoinWindows {
    return new JoinWindows(diffMs, diffMs, graceMs);
  }

  static ofTimeDifferenceWithNoGrace(diffMs: number): JoinWindows {
    return new JoinWindows(diffMs, diffMs, 0);
  }

  /** The other record may be up to `ms` older than this one. */
  before(ms: number): JoinWindows {
    return new JoinWindows(ms, this.afterMs, this.graceMs);
  }

  /** The other record may be up to `ms` newer than this one. */
  after(ms: number): JoinWindows {
    return new JoinWindows(this.beforeMs, ms, this.graceMs);
  }
}
