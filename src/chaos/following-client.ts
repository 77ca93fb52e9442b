/**
 * An SDK client that follows the membership. The SDK takes its endpoints once, at
 * `connect`; after a long run of membership changes none of them may be a member any more,
 * and every broadcast would end `unavailable` for a reason that is the harness's, not the
 * cluster's. So each operation takes the client for the endpoints of the moment: when they
 * changed, a new client (a new session) takes over, and the old one closes once the
 * operations still using it have completed (closing earlier would cut them short).
 */
import { type Client, connect } from '../client/index.ts';
import type { ConnectOptions } from '../client/settings.ts';

export interface Generation {
  /** 1, 2, 3 …: one SDK client, one session, one order of issue. */
  readonly number: number;
  readonly client: Client;
  readonly endpointsKey: string;
  users: number;
}

export class FollowingClient {
  private current: Generation;
  private generationCount = 0;

  constructor(
    private readonly endpoints: () => readonly string[],
    private readonly options: Omit<ConnectOptions, 'endpoints'>,
  ) {
    this.current = this.generation(endpoints());
  }

  private generation(endpoints: readonly string[]): Generation {
    const client = connect({ ...this.options, endpoints });
    this.generationCount++;
    return { number: this.generationCount, client, endpointsKey: endpoints.join(','), users: 0 };
  }

  /** The client to use for one operation; hand it back with `release`. */
  acquire(): Generation {
    const endpoints = this.endpoints();
    // With no endpoint at all (every member down for good) the old list is as good as any.
    if (endpoints.length > 0 && endpoints.join(',') !== this.current.endpointsKey) {
      const retired = this.current;
      this.current = this.generation(endpoints);
      if (retired.users === 0) retired.client.close();
    }
    this.current.users++;
    return this.current;
  }

  release(generation: Generation): void {
    generation.users--;
    if (generation !== this.current && generation.users === 0) generation.client.close();
  }

  close(): void {
    this.current.client.close();
  }
}
