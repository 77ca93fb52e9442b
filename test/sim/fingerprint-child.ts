// Runs each seed given on the command line in this fresh process and prints its fingerprint
// as one JSON line: the baseline test/sim/runtime-isolation.test.ts compares runs against.
import { parseSeed } from '../../src/sim/cli-flags.ts';
import { fingerprintRun } from '../../src/sim/runtime/fingerprint.ts';

for (const argument of process.argv.slice(2)) {
  const fingerprint = await fingerprintRun({ seed: parseSeed(argument) });
  process.stdout.write(`${JSON.stringify(fingerprint)}\n`);
}
