/**
 * One broadcast from its call to its end, as the client (./client.ts) holds it: the one
 * object each message in flight keeps for its whole life. With 10,000 in flight, messages
 * live for hundreds of milliseconds, long enough for V8 to move what they hold out of its
 * young generation, where collecting it costs far more: so the message's place, its text,
 * its caller's settle functions and its state share this record instead of each attempt
 * making a message object, a promise and closures of its own. It is also what the batcher
 * queues (a BatchedBroadcast), and the batcher hands its outcome back to the client with
 * it, so a first attempt needs no object, promise or closure of its own either.
 */
import type { BatchedBroadcast } from './batcher.ts';
import type { Outcome } from './http.ts';
import type { FlightId } from './session-chain.ts';
import type { BroadcastAnswer } from './settings.ts';

export class PendingBroadcast implements BatchedBroadcast {
  /** Where its current attempt goes: set by `aim` before every attempt. */
  endpoint = '';
  sessionId = '';
  seq = 0;
  // The rest is the client's alone (#).
  #flight: FlightId = 0;
  #batched = false;
  #batchedWaiter: ((outcome: Outcome<unknown>) => void) | null = null;
  #resolveCaller: ((answer: BroadcastAnswer) => void) | null = null;
  #rejectCaller: ((error: unknown) => void) | null = null;

  constructor(
    /** Its JSON text, or, when `payloadQuoted`, a string whose JSON text is itself quoted. */
    readonly payload: string,
    readonly payloadQuoted: boolean,
    /** `payloadQuoted`, and every character of it ASCII (its UTF-8 is its UTF-16 length). */
    readonly payloadAscii: boolean,
    readonly topic: string | undefined,
    readonly key: string | undefined,
    /** The client's session nonce, when it has one (see Client). */
    readonly nonce: string | undefined,
  ) {}

  /** Its flight in the session chain; 0 until it is issued. */
  get flight(): FlightId {
    return this.#flight;
  }

  set flight(flight: FlightId) {
    this.#flight = flight;
  }

  /**
   * Its first attempt travels in a batch and is not answered yet. A cut of its session
   * (SessionChain's `cut` effect) ends that wait at once, as an abort ends a single POST.
   */
  get batched(): boolean {
    return this.#batched;
  }

  set batched(batched: boolean) {
    this.#batched = batched;
  }

  /** Who awaits that batched attempt: the client's retry loop, or null (the client itself). */
  get batchedWaiter(): ((outcome: Outcome<unknown>) => void) | null {
    return this.#batchedWaiter;
  }

  set batchedWaiter(waiter: ((outcome: Outcome<unknown>) => void) | null) {
    this.#batchedWaiter = waiter;
  }

  /** The promise its caller awaits; settled once, by `answer` or `fail`, whichever comes first. */
  answerPromise(): Promise<BroadcastAnswer> {
    PendingBroadcast.#making = this;
    try {
      return new Promise(PendingBroadcast.#keepSettlers);
    } finally {
      PendingBroadcast.#making = null;
    }
  }

  /** The record `answerPromise` makes a promise for (an executor runs at once, within). */
  static #making: PendingBroadcast | null = null;

  /** The one executor of every record's promise: no closure made per message for it. */
  static readonly #keepSettlers = (
    resolve: (answer: BroadcastAnswer) => void,
    reject: (error: unknown) => void,
  ): void => {
    const pending = PendingBroadcast.#making as PendingBroadcast;
    pending.#resolveCaller = resolve;
    pending.#rejectCaller = reject;
  };

  /** The (session, seq) and endpoint of the attempt about to go out. */
  aim(endpoint: string, sessionId: string, seq: number): void {
    this.endpoint = endpoint;
    this.sessionId = sessionId;
    this.seq = seq;
  }

  /** Resolves its caller, unless the caller was told something already. */
  answer(answer: BroadcastAnswer): void {
    this.#resolveCaller?.(answer);
    this.#forgetCaller();
  }

  /**
   * Rejects its caller, unless the caller was told something already. The message itself
   * may go on (an `unavailable` one is sent on in the background).
   */
  fail(error: unknown): void {
    this.#rejectCaller?.(error);
    this.#forgetCaller();
  }

  /** The caller heard back: its settle functions are of no further use (let them go). */
  #forgetCaller(): void {
    this.#resolveCaller = null;
    this.#rejectCaller = null;
  }
}
