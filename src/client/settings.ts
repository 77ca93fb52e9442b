/**
 * What `connect()` takes and the settings a client runs with: the types the client
 * (./client.ts) and its subscriptions (./subscribe.ts) share, so neither imports the other's
 * module for them.
 */
import type { Environment } from '../util/environment.ts';
import { systemEnvironment } from '../util/system-environment.ts';
import {
  BinaryConnectionError,
  type BinaryExchange,
  binaryExchange,
  isBinaryUrl,
} from './binary-exchange.ts';
import { ClientError } from './errors.ts';
import type { HttpExchange, HttpExchangeRequest, RunExchangeRequest } from './exchange.ts';
import { nodeExchange, openStream, type StreamAnswer } from './node-exchange.ts';
import {
  type ClientProtocol,
  clientProtocols,
  type UpgradedTransport,
  upgradedTransport,
} from './protocol-upgrade.ts';

/**
 * Deliberately broken behaviours, for tests that prove the checks catch them. Never set
 * outside tests. `moveSentMessage`: after the nodes forgot a session (session_unknown), a
 * message already sent in it moves to the new session like one never sent, although it may
 * have been delivered already: it can be delivered twice.
 */
export type UnsafeVariant = 'moveSentMessage';

export interface ConnectOptions {
  /**
   * Base URLs of the nodes, e.g. `http://127.0.0.1:8001`, or `abcast://127.0.0.1:9001` for the
   * binary protocol (docs/protocol.md); any node serves any call and any subscription.
   */
  readonly endpoints: readonly string[];
  /** The session id (1–255 bytes); random by default. Reuse one only for one live client. */
  readonly clientId?: string;
  /** One HTTP attempt's deadline; then the same (client, seq) goes to another endpoint. */
  readonly requestTimeoutMs?: number;
  /** A call fails with `unavailable` once it has been retried for this long. */
  readonly unavailableAfterMs?: number;
  /**
   * A broadcast that was sent but never answered is sent on in the background after it
   * failed `unavailable`, for at most this long from its start (default 5 min, at least
   * `unavailableAfterMs`). Keep it well below the nodes' `sessionTtlMs` (default 1 h): a
   * message resent after its session expired there could be taken for a new one.
   */
  readonly abandonAfterMs?: number;
  /** Backoff after every endpoint failed once: full jitter from this base, doubling. */
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Broadcasts on the wire at once; later ones wait their turn in issue order. */
  readonly inFlightMax?: number;
  /**
   * Send the broadcasts issued in one turn of the event loop as one request
   * (POST /v1/broadcast/batch), each still exactly once on its own (default true).
   */
  readonly batching?: boolean;
  /**
   * Every clock read, timer and random draw of the client (default: the real ones). The
   * simulator passes its virtual clock and seeded generator.
   */
  readonly environment?: Environment;
  /**
   * How requests other than streams reach the nodes (default: node:http with kept-alive
   * connections). The simulator passes one that reaches simulated nodes.
   */
  readonly exchange?: HttpExchange;
  /** A deliberately broken behaviour (see UnsafeVariant). Never set outside tests. */
  readonly unsafe?: UnsafeVariant;
  /**
   * The CA (PEM text) that https endpoints' certificates must come from, such as the
   * cluster's `ca.crt`; default: the system's trusted CAs.
   */
  readonly ca?: string | Uint8Array;
  /**
   * How http(s) endpoints are reached: `auto` (the default) moves each node's calls and
   * streams to its binary port once its status offers one that answers, and back to HTTP
   * if that port fails (protocol-upgrade.ts); `http` stays on HTTP.
   */
  readonly protocol?: ClientProtocol;
  /**
   * The token of a cluster started with `--auth` (`abcast token create` prints one), sent
   * as `Authorization: Bearer` with every request, streams included.
   */
  readonly token?: string;
}

export interface BroadcastOptions {
  readonly topic?: string;
  /**
   * The message's key (1–255 bytes of UTF-8, no control characters): a consumer group gives
   * one key's messages to one member, in order, and a compacted topic keeps the newest
   * message per key. Over either protocol: the binary one carries the same request bodies.
   */
  readonly key?: string;
}

export interface BroadcastAnswer {
  /** Position in the total order (null only for a duplicate whose original is long gone). */
  readonly position: number | null;
  readonly term: number | null;
  /** True when a retry found the message already delivered (it was delivered once). */
  readonly duplicate: boolean;
}

/** The bounds of the session chain (./session-chain.ts), all in ms. */
export interface ChainBounds {
  readonly unavailableAfterMs: number;
  readonly abandonAfterMs: number;
  readonly unsafe: UnsafeVariant | null;
}

export interface Settings extends ChainBounds {
  readonly endpoints: readonly string[];
  readonly requestTimeoutMs: number;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  readonly inFlightMax: number;
  readonly batching: boolean;
  readonly environment: Environment;
  readonly exchange: HttpExchange;
  /** Opens an event stream (GET, answer read as it arrives), trusting the client's CA. */
  readonly openStream: (
    url: string,
    headers: Readonly<Record<string, string>>,
    signal: AbortSignal,
  ) => Promise<StreamAnswer>;
}

/** The settings' positive integer fields, checked alike. */
const integerFields = [
  'requestTimeoutMs',
  'unavailableAfterMs',
  'abandonAfterMs',
  'backoffBaseMs',
  'backoffMaxMs',
  'inFlightMax',
] as const;

/** 50 ms, or a cap given below it: asking only for a small cap is not a mistake. */
function defaultBackoffBaseMs(backoffMaxMs: unknown): number {
  const base = 50;
  return Number.isSafeInteger(backoffMaxMs) && (backoffMaxMs as number) > 0
    ? Math.min(base, backoffMaxMs as number)
    : base;
}

export function settingsOf(options: ConnectOptions): Settings {
  // Callers from plain JavaScript get no type checks: a wrong shape is refused here, by
  // name, instead of failing as a TypeError from deep inside.
  if (typeof options !== 'object' || options === null) {
    throw new ClientError('invalid_argument', 'connect takes an options object', {
      field: 'options',
    });
  }
  if (options.endpoints !== undefined && !Array.isArray(options.endpoints)) {
    throw new ClientError(
      'invalid_argument',
      'endpoints takes an array of URLs, such as ["http://127.0.0.1:8001"]',
      { field: 'endpoints' },
    );
  }
  const endpoints = (options.endpoints ?? []).map(endpointUrl);
  if (endpoints.length === 0) {
    throw new ClientError('invalid_argument', 'connect needs at least one endpoint', {
      field: 'endpoints',
    });
  }
  const environment = options.environment ?? systemEnvironment;
  const tls = { ca: caText(options.ca) };
  const authorization = authorizationOf(options.token);
  const protocol = options.protocol ?? 'auto';
  if (!clientProtocols.includes(protocol)) {
    throw new ClientError('invalid_argument', 'protocol takes auto or http', {
      field: 'protocol',
    });
  }
  // A given exchange (the simulator's) is used as it is: nothing to upgrade.
  const upgrading = protocol === 'auto' && options.exchange === undefined;
  const overBinary =
    upgrading || endpoints.some(isBinaryUrl) ? binaryExchange(environment, tls) : null;
  const overHttp = nodeExchange(environment, tls);
  const upgraded =
    upgrading && overBinary !== null ? upgradedTransport(environment, overHttp, overBinary) : null;
  const exchange: HttpExchange =
    options.exchange ??
    Object.assign(
      (request: HttpExchangeRequest) => {
        if (isBinaryUrl(request.url) && overBinary !== null) return overBinary(request);
        return upgraded === null ? overHttp(request) : upgraded.exchange(request);
      },
      overBinary === null ? {} : { broadcastRun: runsOf(overBinary, upgraded) },
    );
  const settings: Settings = {
    endpoints,
    requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
    unavailableAfterMs: options.unavailableAfterMs ?? 60_000,
    abandonAfterMs:
      options.abandonAfterMs ?? Math.max(300_000, options.unavailableAfterMs ?? 60_000),
    backoffBaseMs: options.backoffBaseMs ?? defaultBackoffBaseMs(options.backoffMaxMs),
    backoffMaxMs: options.backoffMaxMs ?? 2_000,
    inFlightMax: options.inFlightMax ?? 256,
    batching: options.batching ?? true,
    environment,
    exchange: authorization === null ? exchange : authorized(exchange, authorization),
    openStream: (url, headers, signal) => {
      const streamHeaders = { ...headers, ...authorization };
      const givenStream = options.exchange?.openStream;
      if (givenStream !== undefined) {
        return givenStream(url, streamHeaders, signal, settings.requestTimeoutMs);
      }
      if (!isBinaryUrl(url)) {
        const overHttpStream = () => openStream(tls, url, streamHeaders, signal);
        if (upgraded === null) return overHttpStream();
        return upgraded.openStream(
          url,
          streamHeaders,
          signal,
          settings.requestTimeoutMs,
          overHttpStream,
        );
      }
      if (overBinary === null) {
        return Promise.reject(
          new BinaryConnectionError('stream_not_binary', `${url} is not one of the endpoints`),
        );
      }
      return overBinary.openStream(url, streamHeaders, signal, settings.requestTimeoutMs);
    },
    unsafe: options.unsafe ?? null,
  };
  if (typeof settings.batching !== 'boolean') {
    throw new ClientError('invalid_argument', 'batching takes a boolean', { field: 'batching' });
  }
  if (settings.unsafe !== null && settings.unsafe !== 'moveSentMessage') {
    throw new ClientError('invalid_argument', 'unknown unsafe variant', { field: 'unsafe' });
  }
  for (const name of integerFields) {
    const value = settings[name];
    if (!(Number.isSafeInteger(value) && value > 0)) {
      throw new ClientError('invalid_argument', `${name} takes a positive integer, got ${value}`, {
        field: name,
      });
    }
  }
  // The wait doubles from the base up to the cap: a base above the cap would make every wait
  // the cap, which is not what either number asked for.
  if (settings.backoffBaseMs > settings.backoffMaxMs) {
    throw new ClientError(
      'invalid_argument',
      `backoffBaseMs (${settings.backoffBaseMs}) must be at most backoffMaxMs (${settings.backoffMaxMs})`,
      { field: 'backoffBaseMs' },
    );
  }
  if (settings.abandonAfterMs < settings.unavailableAfterMs) {
    throw new ClientError(
      'invalid_argument',
      `abandonAfterMs (${settings.abandonAfterMs}) must be at least unavailableAfterMs (${settings.unavailableAfterMs})`,
      { field: 'abandonAfterMs' },
    );
  }
  return settings;
}

/** Runs of broadcasts in their own frame, to nodes reached over the binary protocol. */
function runsOf(
  overBinary: BinaryExchange,
  upgraded: UpgradedTransport | null,
): NonNullable<HttpExchange['broadcastRun']> {
  return (request) => {
    if (isBinaryUrl(request.url)) return overBinary.broadcastRun(request);
    return upgraded?.exchange.broadcastRun?.(request) ?? Promise.resolve(null);
  };
}

/** `exchange` with the client's token on every call and run. */
function authorized(
  exchange: HttpExchange,
  authorization: Readonly<Record<string, string>>,
): HttpExchange {
  const { broadcastRun } = exchange;
  return Object.assign(
    (request: HttpExchangeRequest) =>
      exchange({ ...request, headers: { ...request.headers, ...authorization } }),
    broadcastRun === undefined
      ? {}
      : {
          broadcastRun: (request: RunExchangeRequest) =>
            broadcastRun({ ...request, headers: { ...request.headers, ...authorization } }),
        },
  );
}

function authorizationOf(token: string | undefined): Record<string, string> | null {
  if (token === undefined) return null;
  if (typeof token !== 'string' || !/^[A-Za-z0-9._~+/=-]{1,512}$/.test(token)) {
    throw new ClientError(
      'invalid_argument',
      'token takes the token text `abcast token create` printed',
      { field: 'token' },
    );
  }
  return { authorization: `Bearer ${token}` };
}

function caText(ca: string | Uint8Array | undefined): string | null {
  if (ca === undefined) return null;
  const text =
    typeof ca === 'string'
      ? ca
      : ca instanceof Uint8Array
        ? Buffer.from(ca).toString('utf8')
        : null;
  if (text === null || !text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ClientError(
      'invalid_argument',
      'ca takes the PEM text of a CA certificate (the contents of ca.crt, not its path)',
      { field: 'ca' },
    );
  }
  return text;
}

/** The base URL without a trailing slash: http(s), or abcast(s) for the binary protocol. */
function endpointUrl(text: string): string {
  let url: URL | null = null;
  try {
    url = new URL(text);
  } catch {
    // refused below
  }
  if (url === null || !['http:', 'https:', 'abcast:', 'abcasts:'].includes(url.protocol)) {
    throw new ClientError(
      'invalid_argument',
      `an endpoint is an http(s) base URL like http://127.0.0.1:8001 or a binary one like abcast://127.0.0.1:9001, got "${text}"`,
      { field: 'endpoints', endpoint: text },
    );
  }
  return url.href.replace(/\/+$/, '');
}
