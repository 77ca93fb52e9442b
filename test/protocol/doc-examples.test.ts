// The byte-by-byte examples of docs/protocol.md, read out of the document itself, are what the
// clean-room codec of test/protocol/frames.ts writes and reads: a change to the document's
// bytes or to the codec that makes them disagree fails here, without a node.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { broadcastRunFrame, decodeServerFrame, helloFrame, requestFrame } from './frames.ts';

const documentPath = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));

/** The hex bytes at the start of each line of a code block: pairs up to the first other word. */
function hexOfBlock(block: string): Buffer {
  const bytes: number[] = [];
  for (const line of block.split('\n')) {
    for (const token of line.trim().split(/\s+/)) {
      if (!/^[0-9a-f]{2}$/.test(token)) break;
      bytes.push(Number.parseInt(token, 16));
    }
  }
  return Buffer.from(bytes);
}

async function examples(): Promise<{ hello: Buffer; blocks: Buffer[] }> {
  const text = await readFile(documentPath, 'utf8');
  const section = text.slice(text.indexOf('## An example, byte by byte'));
  const hello = /A hello without a token: `([0-9a-f ]+)`/.exec(section)?.[1];
  assert.ok(hello !== undefined, 'the document gives a hello');
  const blocks = [...section.matchAll(/```\n([\s\S]*?)```/g)].map((match) =>
    hexOfBlock(match[1] as string),
  );
  return { hello: hexOfBlock(hello), blocks };
}

describe("the document's examples", () => {
  test('a hello without a token', async () => {
    const { hello } = await examples();
    assert.deepEqual(helloFrame(''), hello);
  });

  test('request 7, GET /v1/status', async () => {
    const { blocks } = await examples();
    assert.deepEqual(requestFrame(7, { method: 'GET', path: '/v1/status' }), blocks[0]);
  });

  test('broadcastRun 8 of two messages', async () => {
    const { blocks } = await examples();
    const run = broadcastRunFrame(8, {
      client: 'c1',
      firstSeq: 1,
      messages: [
        { payloadJson: '{"a":1}', topic: 't' },
        { payloadJson: '2', key: 'k' },
      ],
    });
    assert.deepEqual(run, blocks[1]);
  });

  test('its runAnswer: one delivered, one refused', async () => {
    const { blocks } = await examples();
    const frame = decodeServerFrame(blocks[2] as Buffer);
    assert.deepEqual(frame, {
      type: 'runAnswer',
      requestId: 8,
      results: [
        { kind: 'delivered', position: 41, term: 3 },
        { kind: 'error', status: 409, code: 'session_conflict', message: 'x', details: null },
      ],
    });
  });
});
