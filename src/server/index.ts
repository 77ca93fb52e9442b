/**
 * The HTTP API of a node: `createHttpServer({ node, logger, peers })` behind node:http, or
 * `new InProcessServer(createServerContext({ node, logger, environment }))` without sockets;
 * see docs/api.md.
 */
export type { ServedNode, ServedStatus, ServerContext } from './context.ts';
export type { HttpErrorCode } from './errors.ts';
export {
  createHttpServer,
  defaultHttpSettings,
  type HttpServer,
  type HttpServerOptions,
} from './http.ts';
export {
  type InProcessRequest,
  type InProcessResponse,
  InProcessServer,
} from './in-process.ts';
export type { WireMessage } from './messages.ts';
export { createServerContext, type ServerOptions } from './settings.ts';
