/**
 * What every MCP session of one server shares: the SDK client to the cluster, the agents'
 * primitives opened over it, and the watchers behind resource subscriptions. Over stdio
 * there is one session; over HTTP one per connected MCP client, all on this one backend.
 */
import { type Client, type ConnectOptions, connect } from '../client/index.ts';
import { Coordination } from './coordination.ts';
import { Watchers } from './watchers.ts';

export interface BackendOptions {
  /** The nodes' HTTP base URLs. */
  readonly endpoints: readonly string[];
  readonly token?: string | undefined;
  /** The CA certificate (PEM text) of https nodes. */
  readonly ca?: string | undefined;
  /** Names the locks set, presence group and barriers set the tools use (default `mcp`). */
  readonly space?: string;
  /**
   * How long a tool call keeps retrying across nodes before it answers `unavailable`
   * (default 30 s): below the usual 60 s an MCP client waits for a call.
   */
  readonly callBoundMs?: number;
}

export class Backend {
  readonly client: Client;
  readonly coordination: Coordination;
  readonly watchers: Watchers;
  readonly callBoundMs: number;

  constructor(options: BackendOptions) {
    this.callBoundMs = options.callBoundMs ?? 30_000;
    const connectOptions: ConnectOptions = {
      endpoints: options.endpoints,
      requestTimeoutMs: Math.min(5_000, this.callBoundMs),
      unavailableAfterMs: this.callBoundMs,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    };
    this.client = connect(connectOptions);
    this.coordination = new Coordination(this.client, options.space ?? 'mcp');
    this.watchers = new Watchers(this.client);
  }

  async close(): Promise<void> {
    this.watchers.close();
    await this.coordination.close();
    this.client.close();
  }
}
