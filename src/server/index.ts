/** The HTTP API of a node: `createHttpServer({ node, logger, peers })`; see docs/api.md. */
export type { ServedNode, ServedStatus } from './context.ts';
export type { HttpErrorCode } from './errors.ts';
export {
  createHttpServer,
  defaultHttpSettings,
  type HttpServer,
  type HttpServerOptions,
} from './http.ts';
export type { WireMessage } from './messages.ts';
