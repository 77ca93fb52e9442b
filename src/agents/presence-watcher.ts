import { AgentError } from './errors.ts';
import type { PresenceEvent } from './presence-machine.ts';

/** A bounded, single-consumer queue of events for one watch. */
export class Watcher implements AsyncIterableIterator<PresenceEvent> {
  private readonly buffer: PresenceEvent[] = [];
  private head = 0;
  private ended = false;
  private error: AgentError | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly bufferMax: number,
    private readonly detach: () => void,
  ) {}

  push(event: PresenceEvent): void {
    if (this.ended) return;
    if (this.buffer.length - this.head >= this.bufferMax) {
      this.end(
        new AgentError(
          'stopped',
          `the watcher fell more than ${this.bufferMax} events behind; read members() and watch again`,
          { reason: 'overflow', position: event.position },
        ),
      );
      return;
    }
    this.buffer.push(event);
    this.wakeUp();
  }

  end(error: AgentError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.detach();
    this.wakeUp();
  }

  async next(): Promise<IteratorResult<PresenceEvent>> {
    for (;;) {
      if (this.head < this.buffer.length) {
        const event = this.buffer[this.head] as PresenceEvent;
        this.head += 1;
        if (this.head > 1024 && this.head * 2 > this.buffer.length) {
          this.buffer.splice(0, this.head);
          this.head = 0;
        }
        return { done: false, value: event };
      }
      if (this.ended) {
        if (this.error !== null) {
          const error = this.error;
          this.error = null;
          throw error;
        }
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  async return(): Promise<IteratorResult<PresenceEvent>> {
    this.end(null);
    this.buffer.length = 0;
    this.head = 0;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<PresenceEvent> {
    return this;
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
