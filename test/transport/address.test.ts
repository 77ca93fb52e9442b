// Proves "host:port" parsing accepts IPv4, names and bracketed IPv6, and refuses everything
// else with TransportError('INVALID_ADDRESS').
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress, parseAddress } from '../../src/transport/address.ts';
import { TransportError } from '../../src/transport/errors.ts';

test('valid addresses parse and format back', () => {
  for (const text of ['127.0.0.1:7000', 'node-1.local:1', '[::1]:65535']) {
    assert.equal(formatAddress(parseAddress(text, false)), text);
  }
  assert.deepStrictEqual(parseAddress('[::1]:0', true), { host: '::1', port: 0 });
});

test('malformed addresses are refused with a typed error', () => {
  const bad: readonly unknown[] = [
    '',
    '7000',
    ':7000',
    'host:',
    'host:70000',
    'host:0',
    '::1:80',
    'a b:1',
    'host:-1',
    'host:1e3',
    42,
    null,
  ];
  for (const text of bad) {
    assert.throws(
      () => parseAddress(text, false),
      (error: unknown) => error instanceof TransportError && error.code === 'INVALID_ADDRESS',
      String(text),
    );
  }
});
