/**
 * The abcast MCP server (docs/mcp.md): the total order, the task board, locks, presence and
 * barriers as Model Context Protocol tools and resources, over stdio or Streamable HTTP.
 */
export { Backend, type BackendOptions } from './backend.ts';
export { keySession } from './keyed-broadcast.ts';
export { buildMcpServer, type HttpMcp, serveHttp, serveStdio } from './server.ts';
export { type ToolErrorCode, ToolFailure } from './tool-errors.ts';
