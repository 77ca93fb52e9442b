// The SDK refuses options of the wrong shape, as plain JavaScript can pass them, with a
// ClientError `invalid_argument` naming the field, never a TypeError from inside: no
// options at all, endpoints as one string, a number for clientId or ca, and broadcast
// options that are not an object. Nothing is sent: the one endpoint listens nowhere.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientError, type ConnectOptions, connect } from '../../src/client/index.ts';

const nowhere = 'http://127.0.0.1:1';

/** `connect(options)` throws invalid_argument naming `field`. */
function refused(options: unknown, field: string): void {
  assert.throws(
    () => connect(options as ConnectOptions),
    (error: unknown) => {
      assert.ok(error instanceof ClientError, `a ClientError, not ${String(error)}`);
      assert.equal(error.code, 'invalid_argument');
      assert.equal(error.details.field, field);
      return true;
    },
  );
}

test('connect refuses options of the wrong shape by field', () => {
  refused(undefined, 'options');
  refused(null, 'options');
  refused({ endpoints: nowhere }, 'endpoints');
  refused({ endpoints: [nowhere], clientId: 5 }, 'clientId');
  refused({ endpoints: [nowhere], ca: 5 }, 'ca');
  refused({ endpoints: [nowhere], ca: {} }, 'ca');
});

test('broadcast refuses options that are not an object, before sending', async () => {
  const client = connect({ endpoints: [nowhere], protocol: 'http' });
  try {
    for (const options of [null, 'orders', 5, ['orders']]) {
      await assert.rejects(client.broadcast(1, options as never), (error: unknown) => {
        assert.ok(error instanceof ClientError, `a ClientError, not ${String(error)}`);
        assert.equal(error.code, 'invalid_argument');
        assert.equal(error.details.field, 'options');
        return true;
      });
    }
  } finally {
    client.close();
  }
});
