/**
 * The HTTP API of one node (docs/api.md is the contract), behind plain `node:http`: each
 * request becomes an exchange (node-exchange.ts) that the dispatcher runs through the routing
 * table, with its deadline. The same routes run without a socket in in-process.ts.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsCredentials } from '../transport/tls.ts';
import type { Environment } from '../util/environment.ts';
import { systemEnvironment } from '../util/system-environment.ts';
import { BinaryServer, defaultWindowRequests } from './binary-server.ts';
import type { ServerContext } from './context.ts';
import { applyCors, type CorsPolicy } from './cors.ts';
import { Dispatcher } from './dispatcher.ts';
import { listenOn, tlsServerOptions } from './listen.ts';
import { nodeFront } from './node-exchange.ts';
import { apiRoutes } from './routes/index.ts';
import { createServerContext, type ServerOptions } from './settings.ts';

export { defaultHttpSettings } from './settings.ts';

export type HttpServerOptions = Omit<ServerOptions, 'environment'> & {
  /** The clock and timers of deadlines, keep-alives and latencies; default the system's. */
  readonly environment?: Environment;
  /**
   * Serve HTTPS with this certificate and key (new files given to `update` serve new
   * connections); plain HTTP when absent.
   */
  readonly tls?: TlsCredentials;
  /** Web pages of these origins may call the API (cors.ts); null or absent: none. */
  readonly cors?: CorsPolicy | null;
  /** Unanswered requests one binary-port connection may hold; default 1024. */
  readonly clientWindowRequests?: number;
};

export interface HttpServer {
  /** Listens on "host:port" (port 0 picks a free one); resolves with the base URL. */
  listen(address: string): Promise<string>;
  /**
   * Also serves the binary client protocol (binary-server.ts) on "host:port", TLS when the
   * API has it, through the same routes; resolves with `abcast(s)://host:port`.
   */
  listenBinary(address: string): Promise<string>;
  /** Ends event streams, lets answers in progress finish (within their deadline), stops. */
  close(): Promise<void>;
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const context = createServerContext({
    ...options,
    environment: options.environment ?? systemEnvironment,
    processMemory: options.processMemory ?? (() => process.memoryUsage()),
  });
  const api = new ApiServer(context, options.tls ?? null, options.cors ?? null);
  const binary = new BinaryServer({
    context,
    dispatcher: api.dispatcher,
    tls: options.tls ?? null,
    windowRequests: options.clientWindowRequests ?? defaultWindowRequests,
  });
  api.binary = binary;
  return {
    listen: (address) => api.listen(address),
    listenBinary: async (address) => {
      const url = await binary.listen(address);
      if (context.binaryEndpoint !== undefined) context.binaryEndpoint.url = url;
      return url;
    },
    close: () => api.close(),
  };
}

class ApiServer {
  private readonly server: Server;
  readonly dispatcher: Dispatcher;
  /** The binary client port, closed with the HTTP server. */
  binary: BinaryServer | null = null;
  private closed: Promise<void> | null = null;
  private readonly scheme: 'http' | 'https';
  private stopRotation: (() => void) | null = null;

  constructor(context: ServerContext, tls: TlsCredentials | null, cors: CorsPolicy | null) {
    this.dispatcher = new Dispatcher(context, apiRoutes);
    const timeoutMs = context.settings.requestTimeoutMs;
    const serverOptions = {
      // Slow headers are Node's to refuse (our deadline starts once they are in); the body
      // and the answer are under our own deadline, with Node's requestTimeout as a backstop.
      headersTimeout: timeoutMs,
      requestTimeout: timeoutMs + 1000,
      connectionsCheckingInterval: Math.min(1000, timeoutMs),
    };
    this.scheme = tls === null ? 'http' : 'https';
    if (tls === null) {
      this.server = createServer(serverOptions);
    } else {
      // With authentication, a client may prove who it is by a certificate of the CA; one
      // without a certificate still connects, to present a token instead.
      const askForCertificates = context.auth !== null && context.auth !== undefined;
      const server = createHttpsServer({
        ...serverOptions,
        ...tlsServerOptions(tls.material),
        requestCert: askForCertificates,
        rejectUnauthorized: false,
        // A TLS handshake that has not finished by the request deadline never will.
        handshakeTimeout: timeoutMs,
      });
      this.stopRotation = tls.onUpdate((material) =>
        server.setSecureContext(tlsServerOptions(material)),
      );
      this.server = server;
    }
    // Each connection costs a socket and its buffers: past the bound new ones are closed at
    // accept, which a load balancer reads as "try another node".
    this.server.maxConnections = context.settings.connectionsMax;
    const frontOptions = { lingerMs: timeoutMs, environment: context.environment };
    this.server.on('request', (req, res) => {
      if (applyCors(cors, req, res, this.scheme)) return;
      this.dispatcher.dispatch(nodeFront(req, res, frontOptions));
    });
  }

  listen(address: string): Promise<string> {
    return listenOn(this.server, address, this.scheme);
  }

  close(): Promise<void> {
    if (this.closed === null) this.closed = this.closeOnce();
    return this.closed;
  }

  private async closeOnce(): Promise<void> {
    this.stopRotation?.();
    const binaryStopped = this.binary?.stopListening();
    const stopped = new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    // Streams end now; every other answer ends by its deadline. Then every connection
    // closes, idle keep-alive ones included.
    await this.dispatcher.close();
    this.server.closeAllConnections();
    this.binary?.closeConnections();
    await stopped;
    await binaryStopped;
  }
}
