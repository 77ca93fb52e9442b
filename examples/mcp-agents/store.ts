/**
 * The storage the agents' results go to, outside abcast, as a database or a file service
 * would be: it admits a write only with a fencing token at least as high as any it admitted
 * before (`FencingGuard` from abcast/agents), so a writer whose lock lease ran out — paused,
 * partitioned, slow — cannot overwrite what the lock's next holder wrote. Every attempt is
 * recorded for the checks.
 */
import { FencingGuard } from '../../src/agents/index.ts';

export interface WriteAttempt {
  readonly agent: string;
  readonly token: number;
  readonly admitted: boolean;
  /** The highest token admitted before this attempt. */
  readonly highestBefore: number;
  readonly results: readonly { readonly id: string; readonly result: string }[];
}

export const resultsResource = 'results';

export class ResultsStore {
  private readonly guard = new FencingGuard();
  readonly attempts: WriteAttempt[] = [];
  /** Task id → result, and how many admitted writes carried it. */
  readonly results = new Map<string, string>();
  readonly writesPerTask = new Map<string, number>();

  /** Writes `results` under `token`; false when a newer token has written already. */
  write(agent: string, token: number, results: readonly { id: string; result: string }[]): boolean {
    const highestBefore = this.guard.highestToken(resultsResource);
    const admitted = this.guard.admit(resultsResource, token);
    this.attempts.push({ agent, token, admitted, highestBefore, results: [...results] });
    if (!admitted) return false;
    for (const { id, result } of results) {
      this.results.set(id, result);
      this.writesPerTask.set(id, (this.writesPerTask.get(id) ?? 0) + 1);
    }
    return true;
  }

  highestToken(): number {
    return this.guard.highestToken(resultsResource);
  }
}
