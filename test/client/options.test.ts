// The SDK refuses options of the wrong shape, as plain JavaScript can pass them, with a
// ClientError `invalid_argument` naming the field, never a TypeError from inside: no
// options at all, endpoints as one string, a number for clientId or ca, broadcast options
// that are not an object, subscribe options of the wrong type (a signal that is not one
// also threw uncaught, later) or a topic no node would stream, and an ack of a position
// that is not one. Nothing is sent: the one endpoint listens nowhere.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ClientError,
  type ConnectOptions,
  connect,
  type SubscribeOptions,
} from '../../src/client/index.ts';

const nowhere = 'http://127.0.0.1:1';

/** Whether `error` is an invalid_argument ClientError naming `field`. */
function namesField(error: unknown, field: string): true {
  assert.ok(error instanceof ClientError, `a ClientError, not ${String(error)}`);
  assert.equal(error.code, 'invalid_argument');
  assert.equal(error.details.field, field);
  return true;
}

/** `connect(options)` throws invalid_argument naming `field`. */
function refused(options: unknown, field: string): void {
  assert.throws(
    () => connect(options as ConnectOptions),
    (error: unknown) => namesField(error, field),
  );
}

test('connect refuses options of the wrong shape by field', () => {
  refused(undefined, 'options');
  refused(null, 'options');
  refused({ endpoints: nowhere }, 'endpoints');
  refused({ endpoints: [nowhere], clientId: 5 }, 'clientId');
  refused({ endpoints: [nowhere], ca: 5 }, 'ca');
  refused({ endpoints: [nowhere], ca: {} }, 'ca');
  refused({ endpoints: [nowhere], backoffBaseMs: 5_000 }, 'backoffBaseMs');
  connect({ endpoints: [nowhere], backoffBaseMs: 2_000 }).close();
  connect({ endpoints: [nowhere], backoffMaxMs: 20 }).close(); // the default base follows a small cap
  refused({ endpoints: [nowhere], backoffMaxMs: 'x' }, 'backoffMaxMs');
});

test('broadcast refuses options that are not an object, before sending', async () => {
  const client = connect({ endpoints: [nowhere], protocol: 'http' });
  try {
    for (const options of [null, 'orders', 5, ['orders']]) {
      await assert.rejects(client.broadcast(1, options as never), (error: unknown) =>
        namesField(error, 'options'),
      );
    }
  } finally {
    client.close();
  }
});

test('subscribe and ackConsumer refuse values of the wrong type, before sending', async () => {
  const client = connect({ endpoints: [nowhere], protocol: 'http' });
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  try {
    const cases: [unknown, string][] = [
      [null, 'options'],
      [{ topic: 5 }, 'topic'],
      [{ consumer: '' }, 'consumer'],
      [{ consumer: 'c', member: 7 }, 'member'],
      [{ signal: 'stop' }, 'signal'],
      [{ onProgress: 5 }, 'onProgress'],
    ];
    for (const [options, field] of cases) {
      const subscription = client.subscribe(options as SubscribeOptions);
      await assert.rejects(subscription.next(), (error: unknown) => namesField(error, field));
    }
    await assert.rejects(client.ackConsumer('c', -1), (error: unknown) =>
      namesField(error, 'position'),
    );
    await assert.rejects(client.ackConsumer('c', Number.NaN), (error: unknown) =>
      namesField(error, 'position'),
    );
    await assert.rejects(client.ackConsumer('', 1), (error: unknown) => namesField(error, 'name'));
    // A turn for anything thrown late, outside the calls, to surface.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    client.close();
  }
});

test('subscribe refuses a reserved or overlong topic, before sending', async () => {
  const client = connect({ endpoints: [nowhere], protocol: 'http' });
  try {
    for (const topic of ['$x', '$abcast/membership', 'x'.repeat(256)]) {
      // Bounded: before, the subscription was taken and then waited for a node (or, with
      // one up, for a message no reserved topic is ever given), and the signal ended it.
      const signal = AbortSignal.timeout(2_000);
      const subscription = client.subscribe({ topic, signal });
      await assert.rejects(subscription.next(), (error: unknown) => namesField(error, 'topic'));
    }
  } finally {
    client.close();
  }
});
