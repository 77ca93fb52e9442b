// The dispatcher's one deadline timer for every request: whatever the mix of requests
// begun at different times, answered, abandoned by their client or left unanswered, each
// unanswered one gets its 503 exactly when its own deadline falls (not earlier, not when
// some other request's timer happens to fire), and once every request is over no timer
// stays armed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { ServerContext } from '../../src/server/context.ts';
import { Dispatcher, deadlineGraceMs } from '../../src/server/dispatcher.ts';
import type { Answer, Front } from '../../src/server/exchange.ts';
import { HttpMetrics } from '../../src/server/http-metrics.ts';
import type { Route } from '../../src/server/router.ts';
import { ManualEnvironment, settle } from './manual-environment.ts';

const requestTimeoutMs = 1_000;

interface Plan {
  /** Ms after the previous request's start. */
  readonly gapMs: number;
  /** What ends it: an answer, its client going away, or nothing (its deadline). */
  readonly end: 'answer' | 'gone' | 'none';
  /** Ms after its start that the answer or the departure comes. */
  readonly afterMs: number;
}

const plan: fc.Arbitrary<Plan> = fc.record({
  gapMs: fc.nat(700),
  end: fc.constantFrom('answer' as const, 'gone' as const, 'none' as const),
  afterMs: fc.nat(2 * requestTimeoutMs),
});

test('every unanswered request times out at its own deadline, and no timer outlives them', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(plan, { minLength: 1, maxLength: 12 }), async (plans) => {
      const environment = new ManualEnvironment();
      const waits = new Map<string, () => void>();
      const route: Route = {
        method: 'GET',
        pattern: '/wait',
        access: 'public',
        handler: (context) =>
          new Promise<void>((resolve) => {
            const id = context.request.headers.id as string;
            waits.set(id, () => {
              if (context.response.answerable) {
                context.response.send({ status: 200, headers: {}, body: 'ok' });
              }
              resolve();
            });
          }),
      };
      const context = {
        settings: { requestTimeoutMs, retryAfterSeconds: 1, bodyBytesMax: 1024 },
        metrics: new HttpMetrics(),
        environment,
        logger: { error: () => undefined, warn: () => undefined, info: () => undefined },
        auth: null,
      } as unknown as ServerContext;
      const dispatcher = new Dispatcher(context, [route]);
      const answers = new Map<string, { status: number; atMs: number }>();
      const closers = new Map<string, () => void>();
      const closed = new Set<string>();
      const frontOf = (id: string): Front => {
        let listener: () => void = () => undefined;
        let answered = false;
        let gone = false;
        const close = () => {
          if (closed.has(id)) return;
          closed.add(id);
          listener();
        };
        closers.set(id, () => {
          gone = true;
          close();
        });
        return {
          request: {
            method: 'GET',
            url: '/wait',
            headers: { id },
            readBody: () => Promise.resolve(new Uint8Array(0)),
          },
          response: {
            get answerable() {
              return !answered && !gone;
            },
            get status() {
              return answers.get(id)?.status ?? 200;
            },
            send: (answer: Answer) => {
              assert.ok(!answered, 'answered once');
              answered = true;
              answers.set(id, { status: answer.status, atMs: environment.monotonicMs() });
              queueMicrotask(close);
            },
            startStream: () => {
              throw new Error('no streams here');
            },
          },
          onClose: (each) => {
            listener = each;
          },
          afterErrorAnswer: () => undefined,
        };
      };
      // Every event on one timeline: starts, answers and departures.
      const events: { atMs: number; order: number; run: () => void }[] = [];
      let startMs = 0;
      const startedAt = new Map<string, number>();
      plans.forEach((each, at) => {
        startMs += each.gapMs;
        const id = `r${at}`;
        const begin = startMs;
        startedAt.set(id, begin);
        events.push({ atMs: begin, order: at * 2, run: () => dispatcher.dispatch(frontOf(id)) });
        if (each.end === 'answer') {
          events.push({
            atMs: begin + each.afterMs,
            order: at * 2 + 1,
            run: () => waits.get(id)?.(),
          });
        } else if (each.end === 'gone') {
          events.push({
            atMs: begin + each.afterMs,
            order: at * 2 + 1,
            run: () => closers.get(id)?.(),
          });
        }
      });
      events.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
      const originMs = environment.monotonicMs();
      let nowMs = 0;
      for (const event of events) {
        await environment.advance(event.atMs - nowMs);
        nowMs = event.atMs;
        event.run();
        await settle();
        if (closed.size === waits.size) {
          // Nothing open: no deadline to wait for.
          assert.equal(environment.pendingTimerCount, 0, 'no timer armed while nothing is open');
        }
      }
      await environment.advance(startMs + 3 * requestTimeoutMs - nowMs);
      for (const id of startedAt.keys()) waits.get(id)?.();
      await settle();
      plans.forEach((each, at) => {
        const id = `r${at}`;
        const begin = originMs + (startedAt.get(id) as number);
        const deadlineMs = begin + requestTimeoutMs + deadlineGraceMs;
        const answer = answers.get(id);
        const endMs = begin + each.afterMs;
        if (each.end === 'gone' && endMs < deadlineMs) {
          assert.equal(answer, undefined, `${id} left before its deadline`);
        } else if (each.end === 'answer' && endMs < deadlineMs) {
          assert.deepEqual(answer, { status: 200, atMs: endMs }, `${id} answered`);
        } else {
          assert.deepEqual(answer, { status: 503, atMs: deadlineMs }, `${id} timed out`);
        }
      });
      assert.equal(environment.pendingTimerCount, 0, 'no timer left armed');
    }),
    { numRuns: 300 },
  );
});
