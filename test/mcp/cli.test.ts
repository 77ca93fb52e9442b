// `abcast mcp` mistakes end as one line on stderr and a non-zero exit, before any protocol
// starts: a node URL that is not http(s), an --http address that is not HOST:PORT, a CA file
// that cannot be read, a port already taken.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { holdPort, oneLine, runCli } from '../cli/helpers.ts';
import { freePorts } from '../support/ports.ts';

test('abcast mcp refuses bad flags with one line', async () => {
  const badNode = await runCli(['mcp', '--node', 'ftp://127.0.0.1:1']);
  assert.notEqual(badNode.code, 0);
  assert.match(oneLine(badNode.stderr), /--node takes an http/);
  const badHttp = await runCli(['mcp', '--http', 'nowhere']);
  assert.notEqual(badHttp.code, 0);
  assert.match(oneLine(badHttp.stderr), /--http takes HOST:PORT/);
  const badCa = await runCli(['mcp', '--ca', '/nonexistent/ca.crt']);
  assert.notEqual(badCa.code, 0);
  assert.match(oneLine(badCa.stderr), /cannot read the CA file/);
  const [port] = await freePorts(1);
  const held = await holdPort(port as number);
  try {
    const taken = await runCli(['mcp', '--http', `127.0.0.1:${port}`]);
    assert.notEqual(taken.code, 0);
    assert.match(oneLine(taken.stderr), /in use|EADDRINUSE/);
  } finally {
    await new Promise((done) => held.close(done));
  }
});
