/**
 * Log lines caused by other machines (garbage, refused handshakes) or repeated per frame
 * (an oversized Append that Raft resends every heartbeat) must not flood the log. This
 * wrapper lets one line per kind through per interval and reports how many it held back.
 */
import { assert } from '../util/assert.ts';
import type { TransportLogger } from './types.ts';

type Level = keyof TransportLogger;
type Fields = Readonly<Record<string, unknown>>;

interface KindState {
  lastLoggedAtMs: number;
  suppressedCount: number;
}

/** Distinct kinds tracked; beyond this, the oldest are forgotten (and may log again). */
const kindCountMax = 256;

export class ThrottledLogger implements TransportLogger {
  private readonly kinds = new Map<string, KindState>();

  constructor(
    private readonly logger: TransportLogger,
    private readonly intervalMs: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    assert(Number.isFinite(intervalMs) && intervalMs >= 0, 'the interval is a duration');
  }

  info(fields: Fields, message: string): void {
    this.log('info', fields, message);
  }
  warn(fields: Fields, message: string): void {
    this.log('warn', fields, message);
  }
  error(fields: Fields, message: string): void {
    this.log('error', fields, message);
  }

  /** A line's kind is its message plus its `code` or `reason` field. */
  private log(level: Level, fields: Fields, message: string): void {
    const kind = `${level}\u0000${message}\u0000${String(fields.code ?? fields.reason ?? '')}`;
    const now = this.nowMs();
    const state = this.kinds.get(kind);
    if (state !== undefined && now - state.lastLoggedAtMs < this.intervalMs) {
      state.suppressedCount++;
      return;
    }
    const suppressedCount = state?.suppressedCount ?? 0;
    this.kinds.delete(kind);
    this.kinds.set(kind, { lastLoggedAtMs: now, suppressedCount: 0 });
    if (this.kinds.size > kindCountMax) {
      const oldest = this.kinds.keys().next().value;
      if (oldest !== undefined) this.kinds.delete(oldest);
    }
    this.logger[level](suppressedCount > 0 ? { ...fields, suppressedCount } : fields, message);
  }
}
