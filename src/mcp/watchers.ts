/**
 * What resource subscriptions listen to, shared by every session subscribed to one URI:
 * a topic's subscription stream (`abcast://messages/{topic}`) or the nodes' status, polled
 * (`abcast://status`). A listener is told that the resource changed, at most once per
 * `notifyEveryMs`: a busy topic must not flood a model's client with notifications.
 */
import type { Client } from '../client/index.ts';
import { clusterStatus } from './messages.ts';

const notifyEveryMs = 200;
const statusPollMs = 1_000;
/** Reconnect pace of a topic watch whose subscription ended with an error. */
const rewatchMs = 1_000;

type Listener = () => void;

interface Watch {
  readonly listeners: Set<Listener>;
  readonly stop: AbortController;
  lastNotifiedMs: number;
  pending: NodeJS.Timeout | null;
}

export class Watchers {
  private readonly watches = new Map<string, Watch>();

  constructor(private readonly client: Client) {}

  /** Calls `listener` when the resource at `uri` changes; returns the unsubscribe. */
  watch(uri: string, listener: Listener): () => void {
    let watch = this.watches.get(uri);
    if (watch === undefined) {
      watch = {
        listeners: new Set(),
        stop: new AbortController(),
        lastNotifiedMs: 0,
        pending: null,
      };
      this.watches.set(uri, watch);
      this.start(uri, watch);
    }
    watch.listeners.add(listener);
    const held = watch;
    return () => {
      held.listeners.delete(listener);
      if (held.listeners.size > 0) return;
      this.end(uri, held);
    };
  }

  close(): void {
    for (const [uri, watch] of [...this.watches]) this.end(uri, watch);
  }

  private end(uri: string, watch: Watch): void {
    watch.stop.abort();
    if (watch.pending !== null) clearTimeout(watch.pending);
    if (this.watches.get(uri) === watch) this.watches.delete(uri);
  }

  private start(uri: string, watch: Watch): void {
    const topic = topicOfUri(uri);
    const run = topic === null ? this.pollStatus(watch) : this.followTopic(topic, watch);
    run.catch(() => undefined);
  }

  private notify(watch: Watch): void {
    if (watch.pending !== null || watch.stop.signal.aborted) return;
    const waitMs = Math.max(0, watch.lastNotifiedMs + notifyEveryMs - Date.now());
    watch.pending = setTimeout(() => {
      watch.pending = null;
      watch.lastNotifiedMs = Date.now();
      for (const listener of watch.listeners) listener();
    }, waitMs);
  }

  private async followTopic(topic: string, watch: Watch): Promise<void> {
    const { signal } = watch.stop;
    let from = (await clusterStatus(this.client)).positions.delivered + 1;
    while (!signal.aborted) {
      try {
        for await (const message of this.client.subscribe({ from, topic, signal })) {
          from = message.position + 1;
          this.notify(watch);
        }
      } catch {
        // The subscription failed over for too long: start it again from where it was.
      }
      if (!signal.aborted) await sleep(rewatchMs, signal);
    }
  }

  private async pollStatus(watch: Watch): Promise<void> {
    const { signal } = watch.stop;
    let last = '';
    while (!signal.aborted) {
      const status = await clusterStatus(this.client);
      const summary = JSON.stringify([status.leader, status.term, status.positions.delivered]);
      if (last !== '' && summary !== last) this.notify(watch);
      last = summary;
      await sleep(statusPollMs, signal);
    }
  }
}

/** The topic of a `abcast://messages/{topic}` URI; null for `abcast://status`. */
export function topicOfUri(uri: string): string | null {
  const prefix = 'abcast://messages/';
  return uri.startsWith(prefix) ? decodeURIComponent(uri.slice(prefix.length)) : null;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
