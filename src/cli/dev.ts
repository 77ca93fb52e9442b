/**
 * `npm start`: the same as `abcast dev` — a local cluster of separate node processes on
 * 127.0.0.1 with data under ./data, until Ctrl-C. Arguments are those of `abcast dev`.
 *
 *   npm start [-- --nodes 3 --data ./data --port 7001 --http-port 8001]
 */
import { run } from './main.ts';

await run(['dev', ...process.argv.slice(2)]);
