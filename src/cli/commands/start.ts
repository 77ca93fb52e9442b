/**
 * `abcast start`: one node of a cluster in this process — the library's `startNode` plus its
 * HTTP API — until SIGTERM or SIGINT, which close the HTTP server first (no new requests,
 * streams end) and then the node (the write in flight finishes, the data directory closes).
 * Restarting on the same data directory recovers the node. Flags override `--config FILE`.
 *
 * TLS (tls-files.ts): `--cert/--key/--ca` give mutual TLS between the nodes and HTTPS on the
 * API; SIGHUP re-reads those files. Without them a node only listens on loopback, unless
 * told `--insecure`.
 *
 * Authentication (auth-file.ts): `--auth FILE` names the identities that may call the API
 * and what each may do; SIGHUP re-reads it too. Without it every caller may do everything,
 * as a loopback-only cluster always could.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { BroadcastNode, NodeLogger } from '../../broadcast/node.ts';
import { startNode } from '../../broadcast/start.ts';
import type { HttpExchange } from '../../client/exchange.ts';
import { nodeExchange } from '../../client/node-exchange.ts';
import type { AuthSource } from '../../server/access.ts';
import { Backfill } from '../../server/backfill.ts';
import { type CorsPolicy, parseCorsOrigins } from '../../server/cors.ts';
import { createHttpServer, type HttpServer } from '../../server/http.ts';
import { PeerReads } from '../../server/peers.ts';
import { recordsLimitMax } from '../../server/routes/records.ts';
import { timeoutMsMax } from '../../server/settings.ts';
import { SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN } from '../../storage/file-storage.ts';
import { parseAddress } from '../../transport/address.ts';
import { streamRecordPayloadBytesMax } from '../../transport/stream-records.ts';
import type { TlsCredentials } from '../../transport/tls.ts';
import { systemEnvironment } from '../../util/system-environment.ts';
import { createProcessLogger, type LogFormat, logFormats } from '../logging.ts';
import { tuneNodeHeap } from '../node-heap.ts';
import { readAuthFile } from './auth-file.ts';
import { CliError, positiveIntegerFlag } from './errors.ts';
import { forceNewCluster } from './force-new-cluster.ts';
import { refuseUnfinishedRestore } from './restore-marker.ts';
import {
  addStreamOptions,
  httpPeerNames,
  type StreamFlags,
  type StreamSettings,
  streamSettings,
} from './stream-flags.ts';
import {
  checkExposure,
  loadCredentials,
  reloadCredentials,
  type TlsFiles,
  type TlsSettings,
  tlsSettings,
} from './tls-files.ts';

export interface StartSettings {
  readonly id: string;
  readonly dataDir: string;
  readonly listen: string;
  readonly http: string;
  /** Address of the binary client protocol (`--binary`); null: not served. */
  readonly binary: string | null;
  readonly peers: Readonly<Record<string, string>>;
  readonly join: boolean;
  readonly clusterId: string;
  readonly logLevel: string;
  readonly logFormat: LogFormat;
  /** WAL segment size (each is preallocated); null for the library's default. */
  readonly segmentBytes: number | null;
  /** Log bytes between two snapshots (compaction); null for the default, 64 MiB. */
  /** Largest payload (as JSON text); null for the default, 1 MiB. */
  readonly payloadBytesMax: number | null;
  /** A broadcast not committed by then answers 503 timeout; null for the default, 10 s. */
  readonly requestTimeoutMs: number | null;
  /** An idle binary-port connection is closed after this; null for the default, 5 minutes. */
  readonly binaryIdleTimeoutMs: number | null;
  /** An event stream whose reader takes nothing this long is cut; null for the default. */
  readonly streamStallTimeoutMs: number | null;
  /** Idle client sessions expire after this much log time; null for the default, 1 hour. */
  readonly sessionTtlMs: number | null;
  /** The bounds of `limitFlags` that were set: for the node, and for its HTTP server. */
  readonly limits: { readonly node: LimitValues; readonly http: LimitValues };
  readonly tls: TlsSettings;
  /** Node id → base URL of each member's HTTP API (`--http-peers`), for the dashboard. */
  readonly httpPeers: Readonly<Record<string, string>>;
  /** Web pages of these origins may call the API (`--cors-origins`); null: none. */
  readonly cors: CorsPolicy | null;
  /** The auth file (`--auth`); null: no authentication. */
  readonly authPath: string | null;
  /** What runs without TLS beyond loopback (allowed by --insecure); empty otherwise. */
  readonly exposed: readonly string[];
  /** Retention, the message store, and the peers to backfill from (stream-flags.ts). */
  readonly stream: StreamSettings;
}

export interface StartFlags extends StreamFlags {
  id?: string;
  data?: string;
  listen?: string;
  http?: string;
  binary?: string;
  peers?: string;
  join?: boolean;
  config?: string;
  clusterId?: string;
  logLevel?: string;
  logFormat?: string;
  segmentBytes?: string;
  payloadBytesMax?: string;
  requestTimeoutMs?: string;
  binaryIdleTimeoutMs?: string;
  streamStallTimeoutMs?: string;
  sessionTtlMs?: string;
  pendingBytesMax?: string;
  sessionsMax?: string;
  sessionsPerIdentityMax?: string;
  httpConnectionsMax?: string;
  messagesPageBytesMax?: string;
  streamsMax?: string;
  streamsPerIdentityMax?: string;
  cert?: string;
  key?: string;
  ca?: string;
  clientCert?: string;
  clientKey?: string;
  clientCa?: string;
  insecure?: boolean;
  auth?: string;
  corsOrigins?: string;
  httpPeers?: string;
  forceNewCluster?: boolean;
}

type LimitValues = Readonly<Record<string, number>>;

/**
 * Bounds on what one client or one flood can make a node hold, each a flag (and a key of the
 * config file, its name in camel case) with the default the library applies when unset.
 */
const limitFlags = [
  {
    flag: 'pending-bytes-max',
    name: 'pendingBytesMax',
    side: 'node',
    help: 'payload bytes waiting for the log; beyond it broadcasts answer 503 overloaded (default 256 MiB)',
  },
  {
    flag: 'sessions-max',
    name: 'sessionsMax',
    side: 'node',
    help: 'client sessions; beyond it a new session answers 503 overloaded until some expire (default 100000)',
  },
  {
    flag: 'sessions-per-identity-max',
    name: 'sessionsPerIdentityMax',
    side: 'node',
    help: 'client sessions one identity may hold (with --auth; default 10000)',
  },
  {
    flag: 'http-connections-max',
    name: 'httpConnectionsMax',
    key: 'connectionsMax',
    side: 'http',
    help: 'HTTP connections open at once; beyond it new ones are closed (default 4096)',
  },
  {
    flag: 'messages-page-bytes-max',
    name: 'messagesPageBytesMax',
    side: 'http',
    help: 'payload bytes in one page of /v1/messages (default 4 MiB)',
  },
  {
    flag: 'streams-per-identity-max',
    name: 'streamsPerIdentityMax',
    side: 'http',
    help: 'event streams one identity may hold open (with --auth; default 64)',
  },
  {
    flag: 'streams-max',
    name: 'streamsMax',
    side: 'http',
    help: 'event streams open at once; beyond it a new one answers 503 overloaded (default 1024)',
  },
] as const;

function limitSettings(
  flags: StartFlags,
  config: Record<string, unknown>,
): { node: LimitValues; http: LimitValues } {
  const node: Record<string, number> = {};
  const http: Record<string, number> = {};
  for (const limit of limitFlags) {
    const value = optionalInteger(limit.flag, flags[limit.name] ?? config[limit.name]);
    if (value === null) continue;
    const key = 'key' in limit ? limit.key : limit.name;
    (limit.side === 'node' ? node : http)[key] = value;
  }
  return { node, http };
}

/** An optional positive integer from a flag or the config file. */
function optionalInteger(name: string, value: unknown): number | null {
  return value === undefined ? null : positiveIntegerFlag(name, String(value));
}

/** --payload-bytes-max, within what a message stream carries (the server's own check). */
function payloadLimitFlag(value: unknown): number | null {
  const payloadBytesMax = optionalInteger('payload-bytes-max', value);
  if (payloadBytesMax !== null && payloadBytesMax > streamRecordPayloadBytesMax) {
    throw new CliError(
      `--payload-bytes-max is at most ${streamRecordPayloadBytesMax} (16 MiB), the largest payload a message stream carries`,
    );
  }
  return payloadBytesMax;
}

/**
 * A timeout flag (--request-timeout-ms, --binary-idle-timeout-ms, --stream-stall-timeout-ms), at most 2^31 - 1 ms
 * (`timeoutMsMax`, about 24 days): the longest a Node timer holds, and far more than any
 * broadcast should wait. Near 2^53 node:http refused the server's own timeout, made from
 * it, with a RangeError that named no flag.
 */
function timeoutFlag(flag: string, value: unknown): number | null {
  const timeoutMs = optionalInteger(flag, value);
  if (timeoutMs !== null && timeoutMs > timeoutMsMax) {
    throw new CliError(`--${flag} is at most ${timeoutMsMax} (about 24 days)`);
  }
  return timeoutMs;
}

/** --segment-bytes, within what the WAL takes (it preallocates each segment). */
function segmentBytesFlag(value: unknown): number | null {
  const segmentBytes = optionalInteger('segment-bytes', value);
  if (
    segmentBytes !== null &&
    (segmentBytes < SEGMENT_BYTES_MIN || segmentBytes > SEGMENT_BYTES_LIMIT)
  ) {
    throw new CliError(
      `--segment-bytes takes an integer from ${SEGMENT_BYTES_MIN} to ${SEGMENT_BYTES_LIMIT}, got "${String(value)}"`,
    );
  }
  return segmentBytes;
}

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** "n1=127.0.0.1:7001,n2=…" (or a config file's object) → id → address, every one checked. */
export function parsePeers(value: unknown): Record<string, string> {
  const pairs: [string, string][] =
    typeof value === 'string'
      ? value
          .split(',')
          .filter((part) => part.trim() !== '')
          .map((part) => {
            const at = part.indexOf('=');
            if (at <= 0) throw new CliError(`--peers takes id=host:port,…; "${part}" is not one`);
            return [part.slice(0, at).trim(), part.slice(at + 1).trim()];
          })
      : Object.entries((value ?? {}) as Record<string, unknown>).map(([id, address]) => [
          id,
          String(address),
        ]);
  if (pairs.length === 0) throw new CliError('--peers is required: id=host:port for every member');
  const peers: Record<string, string> = {};
  const idsByAddress = new Map<string, string>();
  for (const [id, address] of pairs) {
    if (id in peers) throw new CliError(`--peers names ${id} twice`);
    checkAddress('peers', address);
    // Two members cannot listen on one address: each would reach the same node, which
    // refuses the one it is not, and the cluster would never have its quorum.
    const other = idsByAddress.get(address);
    if (other !== undefined) {
      throw new CliError(`--peers gives ${address} to both ${other} and ${id}`);
    }
    idsByAddress.set(address, id);
    peers[id] = address;
  }
  return peers;
}

function checkAddress(flag: string, address: string, allowPortZero = false): void {
  try {
    parseAddress(address, allowPortZero);
  } catch (error) {
    throw new CliError(`--${flag}: ${(error as Error).message}`);
  }
}

async function readConfig(path: string | undefined): Promise<Record<string, unknown>> {
  if (path === undefined) return {};
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read the config file ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error('it is not a JSON object');
    }
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`the config file ${path} is not valid: ${(error as Error).message}`);
  }
}

function required(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new CliError(`--${name} is required`);
  return value;
}

/** The flags and the config file, merged and checked; throws a CliError on the first mistake. */
export async function startSettings(flags: StartFlags): Promise<StartSettings> {
  const config = await readConfig(flags.config);
  const id = required('id', flags.id ?? config.id);
  const listen = required('listen', flags.listen ?? config.listen);
  const http = required('http', flags.http ?? config.http);
  checkAddress('listen', listen);
  checkAddress('http', http, true);
  const binaryFlag = flags.binary ?? config.binary;
  const binary = binaryFlag === undefined ? null : String(binaryFlag);
  if (binary !== null) checkAddress('binary', binary, true);
  const peers = parsePeers(flags.peers ?? config.peers);
  if (!(id in peers)) {
    throw new CliError(`the peer list does not include the node itself (${id})`);
  }
  const logLevel = String(flags.logLevel ?? config.logLevel ?? 'warn');
  if (!logLevels.includes(logLevel)) {
    throw new CliError(`--log-level takes one of ${logLevels.join(', ')}`);
  }
  const logFormat = String(flags.logFormat ?? config.logFormat ?? 'auto') as LogFormat;
  if (!logFormats.includes(logFormat)) {
    throw new CliError(`--log-format takes one of ${logFormats.join(', ')}`);
  }
  const segmentBytes = flags.segmentBytes ?? config.segmentBytes;
  const tls = tlsSettings({
    cert: flags.cert ?? config.cert,
    key: flags.key ?? config.key,
    ca: flags.ca ?? config.ca,
    clientCert: flags.clientCert ?? config.clientCert,
    clientKey: flags.clientKey ?? config.clientKey,
    clientCa: flags.clientCa ?? config.clientCa,
    insecure: flags.insecure === true || config.insecure === true,
  });
  const exposed = checkExposure(tls, { listen, http, binary, peers: Object.values(peers) });
  const join = flags.join === true || config.join === true;
  if (join && flags.forceNewCluster === true) {
    // The one makes this node a cluster of its own, the other waits to be added to one.
    throw new CliError('--force-new-cluster and --join do not go together');
  }
  const authPath = flags.auth ?? config.auth;
  if (authPath !== undefined && (typeof authPath !== 'string' || authPath === '')) {
    throw new CliError('--auth takes the path of an auth file (abcast token create makes one)');
  }
  return {
    id,
    cors: corsSettings(flags.corsOrigins ?? config.corsOrigins),
    httpPeers: httpPeerNames(flags.httpPeers ?? config.httpPeers),
    dataDir: resolve(required('data', flags.data ?? config.data)),
    listen,
    http,
    binary,
    peers,
    join,
    clusterId: String(flags.clusterId ?? config.clusterId ?? 'abcast'),
    logLevel,
    logFormat,
    segmentBytes: segmentBytesFlag(segmentBytes),
    payloadBytesMax: payloadLimitFlag(flags.payloadBytesMax ?? config.payloadBytesMax),
    requestTimeoutMs: timeoutFlag(
      'request-timeout-ms',
      flags.requestTimeoutMs ?? config.requestTimeoutMs,
    ),
    binaryIdleTimeoutMs: timeoutFlag(
      'binary-idle-timeout-ms',
      flags.binaryIdleTimeoutMs ?? config.binaryIdleTimeoutMs,
    ),
    streamStallTimeoutMs: timeoutFlag(
      'stream-stall-timeout-ms',
      flags.streamStallTimeoutMs ?? config.streamStallTimeoutMs,
    ),
    sessionTtlMs: optionalInteger('session-ttl-ms', flags.sessionTtlMs ?? config.sessionTtlMs),
    limits: limitSettings(flags, config),
    tls,
    authPath: authPath === undefined ? null : resolve(authPath),
    exposed,
    stream: streamSettings(flags, config, id),
  };
}

function corsSettings(value: unknown): CorsPolicy | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : String(value);
  try {
    return parseCorsOrigins(text);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
}

/** The credentials of each side, read from their files; one object when both share files. */
interface LoadedTls {
  readonly peer: TlsCredentials | null;
  readonly http: TlsCredentials | null;
  /** SIGHUP: re-reads every side's files; resolves with what failed, if anything. */
  reload(): Promise<string[]>;
}

async function loadTls(settings: TlsSettings): Promise<LoadedTls> {
  const sides: { files: TlsFiles; credentials: TlsCredentials }[] = [];
  const load = async (files: TlsFiles | null): Promise<TlsCredentials | null> => {
    if (files === null) return null;
    const shared = sides.find((side) => side.files === files);
    if (shared !== undefined) return shared.credentials;
    const credentials = await loadCredentials(files);
    sides.push({ files, credentials });
    return credentials;
  };
  const peer = await load(settings.peer);
  const http = await load(settings.http);
  return {
    peer,
    http,
    async reload() {
      const failures: string[] = [];
      for (const side of sides) {
        await reloadCredentials(side.credentials, side.files).catch((error: Error) =>
          failures.push(error.message),
        );
      }
      return failures;
    },
  };
}

/**
 * Backfill of the message store from the other nodes; given none, it only reports holes
 * (backfill.ts).
 */
function startBackfill(
  node: BroadcastNode,
  settings: StartSettings,
  logger: NodeLogger,
  peerExchange: HttpExchange,
): Backfill {
  const urls = settings.stream.httpPeers;
  const requestTimeoutMs = settings.requestTimeoutMs ?? 10_000;
  const backfill = new Backfill({
    node,
    peers: new PeerReads(urls, peerExchange, requestTimeoutMs),
    environment: systemEnvironment,
    logger,
    pageCount: recordsLimitMax,
    ...(settings.stream.backfillToken === null
      ? {}
      : { headers: { authorization: `Bearer ${settings.stream.backfillToken}` } }),
    idleIntervalMs: 1000,
  });
  backfill.start();
  return backfill;
}

/** Starts the node and its HTTP server; if the server cannot listen, the node is closed. */
export async function runNode(settings: StartSettings): Promise<{
  node: BroadcastNode;
  http: HttpServer;
  url: string;
  /** The binary client port's URL (`abcast://host:port`), or null when not served. */
  binaryUrl: string | null;
  tls: LoadedTls;
  auth: { table: AuthSource['table'] } | null;
  backfill: Backfill;
}> {
  const logger = await createProcessLogger({
    name: settings.id,
    level: settings.logLevel,
    format: settings.logFormat,
    nowMs: systemEnvironment.monotonicMs,
  });
  const tls = await loadTls(settings.tls);
  const auth = settings.authPath === null ? null : { table: await readAuthFile(settings.authPath) };
  if (settings.exposed.length > 0) {
    logger.warn(
      { exposed: settings.exposed },
      '--insecure: anyone who reaches these ports can forge peer messages and change the cluster',
    );
  }
  await refuseUnfinishedRestore(settings.dataDir);
  const node = await startNode({
    id: settings.id,
    dataDir: settings.dataDir,
    listen: settings.listen,
    peers: settings.peers,
    join: settings.join,
    clusterId: settings.clusterId,
    logger,
    ...(settings.segmentBytes === null ? {} : { segmentBytesMax: settings.segmentBytes }),
    ...(settings.payloadBytesMax === null ? {} : { payloadBytesMax: settings.payloadBytesMax }),
    ...(settings.requestTimeoutMs === null ? {} : { requestTimeoutMs: settings.requestTimeoutMs }),
    ...(settings.sessionTtlMs === null ? {} : { sessionTtlMs: settings.sessionTtlMs }),
    ...settings.limits.node,
    ...(tls.peer === null ? {} : { peerTls: tls.peer }),
    retention: settings.stream.retention,
    ...(settings.stream.compactTopics.length === 0
      ? {}
      : { compactTopics: settings.stream.compactTopics }),
    ...(settings.stream.snapshotIntervalBytes === null
      ? {}
      : { snapshotIntervalBytes: settings.stream.snapshotIntervalBytes }),
    ...(settings.stream.storeSegmentBytes === null
      ? {}
      : { storeSegmentBytesMax: settings.stream.storeSegmentBytes }),
  });
  // Backfill and forwarded reads from https:// peers trust the cluster CA (the HTTP side's),
  // not the public ones: a peer must present a certificate that CA signed.
  const peerExchange = nodeExchange(systemEnvironment, { ca: tls.http?.material.caPem ?? null });
  const http = createHttpServer({
    node,
    logger,
    environment: systemEnvironment,
    peers: settings.peers,
    ...(settings.payloadBytesMax === null ? {} : { payloadBytesMax: settings.payloadBytesMax }),
    ...(settings.requestTimeoutMs === null ? {} : { requestTimeoutMs: settings.requestTimeoutMs }),
    ...(settings.binaryIdleTimeoutMs === null
      ? {}
      : { binaryIdleTimeoutMs: settings.binaryIdleTimeoutMs }),
    ...(settings.streamStallTimeoutMs === null
      ? {}
      : { streamStallTimeoutMs: settings.streamStallTimeoutMs }),
    ...settings.limits.http,
    ...(tls.http === null ? {} : { tls: tls.http }),
    auth,
    cors: settings.cors,
    httpPeers: settings.httpPeers,
    peerUrls: settings.stream.httpPeers,
    peerExchange,
    ...(settings.stream.backfillToken === null
      ? {}
      : { peerHeaders: { authorization: `Bearer ${settings.stream.backfillToken}` } }),
  });
  const backfill = startBackfill(node, settings, logger, peerExchange);
  const url = await listenOrClose({ node, http, backfill }, settings.http, () =>
    http.listen(settings.http),
  );
  const binaryUrl =
    settings.binary === null
      ? null
      : await listenOrClose({ node, http, backfill }, settings.binary, () =>
          http.listenBinary(settings.binary as string),
        );
  return { node, http, url, binaryUrl, tls, auth, backfill };
}

/** Listens, or closes the node and its server and says why it could not. */
async function listenOrClose(
  running: {
    readonly node: BroadcastNode;
    readonly http: HttpServer;
    readonly backfill: Backfill | null;
  },
  address: string,
  listen: () => Promise<string>,
): Promise<string> {
  try {
    return await listen();
  } catch (error) {
    running.backfill?.stop();
    await running.http.close().catch(() => undefined);
    await running.node.close();
    const code = (error as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new CliError(`port in use: cannot listen on ${address}`);
    throw new CliError(`cannot listen on ${address}: ${(error as Error).message}`);
  }
}

const forceWarning = [
  'abcast: WARNING: --force-new-cluster makes this node a cluster of one, giving up what Raft guarantees.',
  'abcast: WARNING: entries this node holds that were never committed may now be committed, and whatever the',
  'abcast: WARNING: lost majority committed without this node is gone. Use it only when the majority is lost',
  'abcast: WARNING: for good; never start the other old members again: add new members to this node instead.',
];

/**
 * `--force-new-cluster`: rewrites the data directory to a one-node configuration before the
 * node starts (snapshot.ts), then, once it leads, records the old members as removed so that
 * it never tries to bring them back.
 */
async function forceNew(settings: StartSettings): Promise<{
  settings: StartSettings;
  removeOld: (node: BroadcastNode) => Promise<void>;
}> {
  for (const line of forceWarning) console.error(line);
  const forced = await forceNewCluster({
    dataDir: settings.dataDir,
    clusterId: settings.clusterId,
    id: settings.id,
  });
  console.error(
    `abcast: WARNING: node ${settings.id} is now the only voter (configuration at log index ${forced.lastIndex}, term ${forced.term})`,
  );
  const oldMembers = Object.keys(settings.peers).filter((id) => id !== settings.id);
  const removeOld = async (node: BroadcastNode) => {
    for (let tries = 0; node.status().role !== 'leader'; tries++) {
      if (tries > 600) throw new CliError('the forced one-node cluster elected no leader in 60 s');
      await new Promise((resume) => setTimeout(resume, 100));
    }
    for (const id of oldMembers) await node.removeMember(id);
    console.error(`abcast: WARNING: old members ${oldMembers.join(', ') || '(none)'} removed`);
  };
  return { settings: { ...settings, peers: { [settings.id]: settings.listen } }, removeOld };
}

async function start(flags: StartFlags): Promise<void> {
  let settings = await startSettings(flags);
  let removeOld: ((node: BroadcastNode) => Promise<void>) | null = null;
  if (flags.forceNewCluster === true) ({ settings, removeOld } = await forceNew(settings));
  const { node, http, url, binaryUrl, tls, auth, backfill } = await runNode(settings);
  if (removeOld !== null) {
    void removeOld(node).catch((error: Error) =>
      console.error(`abcast: removing the old members failed: ${error.message}`),
    );
  }
  const peerMode = tls.peer === null ? '' : ' (mutual TLS)';
  const authMode = auth === null ? '' : ` (${auth.table.identities.length} identities)`;
  console.log(
    `abcast: node ${settings.id} up: HTTP ${url}${authMode}${binaryUrl === null ? '' : `, binary ${binaryUrl}`}, peers on ${settings.listen}${peerMode}, data in ${settings.dataDir}`,
  );
  if (settings.exposed.length > 0) {
    console.error(`abcast: warning: --insecure: no TLS for ${settings.exposed.join(', ')}`);
  }
  // Rotation without restart: new connections use the new files, open ones keep theirs.
  process.on('SIGHUP', () => {
    const { authPath } = settings;
    if (auth !== null && authPath !== null) {
      // Replaced whole, so a request sees the old file or the new one, never half of each.
      void readAuthFile(authPath).then(
        (table) => {
          auth.table = table;
          console.log(`abcast: node ${settings.id} reloaded ${authPath}`);
        },
        (error: Error) =>
          console.error(`abcast: auth file not reloaded, the old one stays: ${error.message}`),
      );
    }
    void tls.reload().then((failures) => {
      if (failures.length === 0) console.log(`abcast: node ${settings.id} reloaded its TLS files`);
      for (const failure of failures) {
        console.error(`abcast: TLS files not reloaded, the old ones stay in use: ${failure}`);
      }
    });
  });
  let stopping = false;
  // A node that stopped itself (its storage failed: a full disk, EIO from fdatasync; or a
  // bug) no longer applies anything, and the storage it gave up on must not be used again by
  // this process. Its process ends with code 1, so a supervisor (systemd, Kubernetes, the
  // chaos runner) restarts it: the restart reopens the data directory and recovers.
  const stoppedWatch = setInterval(() => {
    const stopped = node.status().stopped;
    if (stopped === null || stopping) return;
    clearInterval(stoppedWatch);
    stopping = true;
    console.error(
      `abcast: node ${settings.id} stopped itself (${stopped.code}): ${stopped.message}; exiting with code 1 so that it is restarted`,
    );
    void (async () => {
      backfill?.stop();
      await http.close().catch(() => undefined);
      await node.close().catch(() => undefined);
      process.exit(1);
    })();
  }, 500);
  stoppedWatch.unref();
  const stop = (signal: string) => {
    if (stopping) {
      // A second Ctrl-C: the user does not want to wait for the graceful close. (Ctrl-C then
      // SIGTERM is one request: `abcast dev` relays the terminal's stop that way.)
      if (signal === 'SIGINT') process.exit(130);
      return;
    }
    stopping = true;
    console.log(`abcast: node ${settings.id} stopping (${signal})`);
    void (async () => {
      backfill?.stop();
      await http.close().catch(() => undefined);
      await node.close().catch(() => undefined);
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export function startCommand(program: Command): void {
  const command = program
    .command('start')
    .description('run one node and its HTTP API until SIGTERM or Ctrl-C')
    .option('--id <id>', 'this node id; must be one of --peers')
    .option('--data <dir>', 'data directory (created if missing; recovered on restart)')
    .option('--listen <host:port>', 'address for peer traffic')
    .option('--http <host:port>', 'address of the HTTP API')
    .option(
      '--binary <host:port>',
      'address of the binary client protocol (docs/protocol.md), TLS when the API has it',
    )
    .option('--peers <list>', 'every initial member: n1=host:port,n2=host:port,…')
    .option('--join', 'join a running cluster (wait to be added) instead of bootstrapping')
    .option(
      '--force-new-cluster',
      'DANGER: make this node a cluster of one from its data, when the majority is lost for good (--peers: the old members, to remove them)',
    )
    .option(
      '--config <file>',
      'JSON file with any of: id, data, listen, http, binary, peers, join, clusterId, logLevel, logFormat, segmentBytes, payloadBytesMax, requestTimeoutMs, binaryIdleTimeoutMs, streamStallTimeoutMs, sessionTtlMs, pendingBytesMax, sessionsMax, sessionsPerIdentityMax, httpConnectionsMax, messagesPageBytesMax, streamsMax, streamsPerIdentityMax, cert, key, ca, clientCert, clientKey, clientCa, insecure, auth, corsOrigins, httpPeers, retention, retentionAge, retentionBytes, retentionTopics, compactTopics, storeSegmentBytes, snapshotIntervalBytes, backfillToken',
    )
    .option('--cluster-id <id>', 'nodes of one cluster share it', undefined)
    .option('--log-level <level>', 'pino log level (default warn)')
    .option(
      '--log-format <format>',
      'auto (coloured lines on a terminal, JSON otherwise), pretty or json',
    )
    .option('--segment-bytes <n>', 'WAL segment size in bytes (default 64 MiB, preallocated)')
    .option('--payload-bytes-max <n>', 'largest payload as JSON text (default 1 MiB)')
    .option(
      '--request-timeout-ms <n>',
      'a broadcast not committed by then answers 503 (default 10000)',
    )
    .option(
      '--binary-idle-timeout-ms <n>',
      'a binary-port connection with nothing in flight that sends nothing this long gets a goAway idle_timeout (default 300000)',
    )
    .option(
      '--stream-stall-timeout-ms <n>',
      'an HTTP event stream whose reader takes nothing this long while events wait is cut (default 300000)',
    )
    .option(
      '--session-ttl-ms <n>',
      'idle client sessions expire after this much log time (default 3600000)',
    )
    .option('--cert <file>', "this node's certificate (PEM): mutual TLS with peers, HTTPS")
    .option('--key <file>', "this node's private key (PEM)")
    .option('--ca <file>', 'the cluster CA (PEM): peers must present a certificate it signed')
    .option('--client-cert <file>', 'certificate for the HTTP API, if not --cert')
    .option('--client-key <file>', 'key for the HTTP API, if not --key')
    .option('--client-ca <file>', 'CA for the HTTP API, if not --ca')
    .option('--insecure', 'allow plain TCP and HTTP beyond loopback (anyone can join)')
    .option(
      '--auth <file>',
      'auth file (abcast token create): clients need a token or client certificate; SIGHUP re-reads it',
    );
  command.option(
    '--http-peers <list>',
    "every member's HTTP API, n1=http://host:port,…: the dashboard shows each member's positions",
  );
  command.option(
    '--cors-origins <list>',
    'web pages of these origins may call the API (https://app.example,http://localhost:5173), or * for any (development)',
  );
  for (const limit of limitFlags) command.option(`--${limit.flag} <n>`, limit.help);
  addStreamOptions(command);
  command.action((flags: StartFlags) => {
    tuneNodeHeap();
    return start(flags);
  });
}
