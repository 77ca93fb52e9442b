// The replicated stream state and the leader's retention decision, as pure functions:
// cursors only move forward and never past what is delivered, the floor likewise, records
// decode totally (a malformed one is null everywhere), the state survives its JSON, and
// retention cuts whole segments by log time and by size, never the segment being written.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { retentionCut } from '../../src/broadcast/retention.ts';
import {
  consumersTopic,
  decodeStreamCommand,
  encodeStreamCommand,
  retentionTopic,
  type StreamCommand,
  StreamState,
} from '../../src/broadcast/stream-state.ts';

const at = (lastPosition: number) => ({ lastPosition, logTimeMs: 1000 + lastPosition });

test('a cursor moves forward only, and never past the last delivered position', () => {
  const state = new StreamState();
  state.apply({ op: 'ack', name: 'billing', position: 10 }, at(20));
  state.apply({ op: 'ack', name: 'billing', position: 5 }, at(21));
  assert.equal(state.consumer('billing')?.position, 10);
  state.apply({ op: 'ack', name: 'billing', position: 99 }, at(30));
  assert.equal(state.consumer('billing')?.position, 30);
  assert.equal(state.consumer('billing')?.ackLogTimeMs, 1030);
  state.apply({ op: 'delete', name: 'billing' }, at(30));
  assert.equal(state.consumer('billing'), undefined);
});

test('the retention floor moves forward only, and at most to the last position + 1', () => {
  const state = new StreamState();
  assert.ok(state.isInitial);
  state.apply({ op: 'retain', before: 50 }, at(20));
  assert.equal(state.retainedFrom, 21);
  state.apply({ op: 'retain', before: 10 }, at(40));
  assert.equal(state.retainedFrom, 21);
  assert.ok(!state.isInitial);
});

test('records round-trip, and anything else decodes to null', () => {
  const commands: [string, StreamCommand][] = [
    [retentionTopic, { op: 'retain', before: 7 }],
    [consumersTopic, { op: 'ack', name: 'a.b-c_1', position: 3 }],
    [consumersTopic, { op: 'delete', name: 'x' }],
  ];
  for (const [topic, command] of commands) {
    assert.deepEqual(decodeStreamCommand(topic, encodeStreamCommand(command)), command);
  }
  fc.assert(
    fc.property(fc.uint8Array(), fc.constantFrom(retentionTopic, consumersTopic), (bytes, t) => {
      const command = decodeStreamCommand(t, bytes);
      assert.ok(command === null || typeof command.op === 'string');
    }),
  );
  const bad = new TextEncoder().encode(JSON.stringify({ op: 'ack', name: '../x', position: 1 }));
  assert.equal(decodeStreamCommand(consumersTopic, bad), null);
});

test('the stream state survives its JSON, as snapshots carry it', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          name: fc.constantFrom('a', 'b', 'c'),
          position: fc.nat(100),
          last: fc.nat(100),
        }),
      ),
      (acks) => {
        const state = new StreamState();
        for (const ack of acks) state.apply({ op: 'ack', ...ack }, at(ack.last));
        const copy = StreamState.fromJSON(JSON.parse(JSON.stringify(state)));
        assert.deepEqual(copy.toJSON(), state.toJSON());
      },
    ),
  );
});

const segment = (first: number, last: number, sizeBytes: number, lastLogTimeMs: number) => ({
  first,
  last,
  sizeBytes,
  firstLogTimeMs: lastLogTimeMs,
  lastLogTimeMs,
});

test('retention cuts whole segments by age and by size, never the one being written', () => {
  const segments = [
    segment(1, 10, 100, 1000),
    segment(11, 20, 100, 2000),
    segment(21, 30, 100, 3000),
  ];
  const forever = { ageMs: null, bytesMax: null };
  assert.equal(retentionCut(segments, forever, 10_000), 0);
  assert.equal(retentionCut(segments, { ageMs: 1500, bytesMax: null }, 3000), 11);
  assert.equal(retentionCut(segments, { ageMs: 1, bytesMax: null }, 10_000), 21);
  assert.equal(retentionCut(segments, { ageMs: null, bytesMax: 250 }, 0), 11);
  assert.equal(retentionCut(segments, { ageMs: null, bytesMax: 1 }, 0), 21);
  assert.equal(retentionCut(segments, { ageMs: null, bytesMax: 300 }, 0), 0);
  assert.equal(retentionCut(segments.slice(2), { ageMs: 1, bytesMax: 1 }, 10_000), 0);
});
