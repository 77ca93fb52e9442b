/**
 * Reads from the other nodes' HTTP APIs, for what this node does not hold yet: backfill
 * (backfill.ts) fetches the missing positions' records, and a read of a position still
 * missing here is answered from a peer instead of failing (messages.ts, stream.ts). Each
 * request tries the peers in turn, starting with the one that answered last.
 *
 * Requests go through an HttpExchange: node:http(s) in production, where an https:// peer
 * must present a certificate the cluster CA signed (the exchange is given that CA), and the
 * simulated client network in the simulator, so the same backfill runs in both.
 */
import type { HttpExchange } from '../client/exchange.ts';
import { decodeRecordAt, encodeRecord, type StoredMessage } from '../store/index.ts';
import { digestOfMessages } from './message-digest.ts';

export interface PeerAnswer {
  readonly status: number;
  readonly body: string;
  readonly peer: string;
}

/** A page of records: what GET /v1/records answers. */
export interface RecordsPage {
  readonly from: number;
  /** The records (src/store/record.ts), concatenated, in base64. */
  readonly records: string;
}

export function encodeRecordsPage(from: number, messages: readonly StoredMessage[]): RecordsPage {
  const records = Buffer.concat(messages.map(encodeRecord)).toString('base64');
  return { from, records };
}

/**
 * The messages of a page, checked: every record's checksum, and positions dense from `from`.
 * Throws on any mismatch, so a damaged or foreign answer is never kept.
 */
export function decodeRecordsPage(page: RecordsPage, from: number): StoredMessage[] {
  if (page.from !== from || typeof page.records !== 'string') {
    throw new Error(`a records page for ${page.from}, not ${from}`);
  }
  const bytes = Buffer.from(page.records, 'base64');
  const messages: StoredMessage[] = [];
  for (let at = 0; at < bytes.length; ) {
    const found = decodeRecordAt(bytes, at);
    if (found.kind !== 'record') throw new Error(`a damaged record at byte ${at}`);
    if (found.message.position !== from + messages.length) {
      throw new Error(`position ${found.message.position} where ${from + messages.length} was due`);
    }
    messages.push(found.message);
    at += found.recordBytes;
  }
  return messages;
}

/** An answer of GET /v1/records with one record at least. */
function holdsRecords(answer: PeerAnswer): boolean {
  if (answer.status !== 200) return false;
  try {
    const page = JSON.parse(answer.body) as Partial<RecordsPage>;
    return typeof page.records === 'string' && page.records !== '';
  } catch {
    return false; // not a records page: decodeRecordsPage would refuse it too
  }
}

export class PeerReads {
  private preferred = 0;

  constructor(
    private readonly urls: readonly string[],
    private readonly exchange: HttpExchange,
    private readonly requestTimeoutMs: number,
  ) {}

  get count(): number {
    return this.urls.length;
  }

  /**
   * GET `pathAndQuery` from the peers in turn until one answers other than 5xx (or fails to
   * answer), or as `accept` says; null when none did. `headers` go along (the caller's
   * credentials).
   */
  async get(
    pathAndQuery: string,
    options: { readonly signal?: AbortSignal; readonly headers?: Record<string, string> } = {},
    accept: (answer: PeerAnswer) => boolean = (answer) => answer.status < 500,
  ): Promise<PeerAnswer | null> {
    for (let attempt = 0; attempt < this.urls.length; attempt++) {
      const index = (this.preferred + attempt) % this.urls.length;
      const peer = this.urls[index] as string;
      const answer = await this.getFrom(peer, pathAndQuery, options).catch(() => null);
      if (answer === null || !accept(answer)) continue;
      this.preferred = index;
      return answer;
    }
    return null;
  }

  /**
   * A checked page of records from `from` on, or null when no peer could give one. With two
   * peers or more, another peer's digest of the same range must match too (`crossChecked`);
   * a page no other peer can vouch for yet is kept on its checksums alone.
   */
  async records(
    from: number,
    limit: number,
    options: { readonly signal?: AbortSignal; readonly headers?: Record<string, string> } = {},
  ): Promise<{ messages: StoredMessage[]; crossChecked: boolean } | null> {
    // A peer that has not applied `from` yet answers an empty page: the next one may hold it
    // (seed 0x42d: a new machine, first in turn, was asked again and again).
    const answer = await this.get(`/v1/records?from=${from}&limit=${limit}`, options, holdsRecords);
    if (answer === null) return null;
    const messages = decodeRecordsPage(JSON.parse(answer.body) as RecordsPage, from);
    if (messages.length === 0) return { messages, crossChecked: false };
    const crossChecked = await this.crossCheck(from, messages, answer.peer, options);
    return { messages, crossChecked };
  }

  private async crossCheck(
    from: number,
    messages: readonly StoredMessage[],
    servedBy: string,
    options: { readonly signal?: AbortSignal; readonly headers?: Record<string, string> },
  ): Promise<boolean> {
    const path = `/v1/digest?from=${from}&count=${messages.length}`;
    for (const peer of this.urls) {
      if (peer === servedBy) continue;
      const answer = await this.getFrom(peer, path, options).catch(() => null);
      if (answer === null || answer.status !== 200) continue;
      const other = JSON.parse(answer.body) as { count?: number; digest?: string };
      if (other.count !== messages.length) continue; // that peer lags: no verdict
      if (other.digest !== digestOfMessages(messages)) {
        throw new Error(`${servedBy} and ${peer} disagree on positions ${from}…`);
      }
      return true;
    }
    return false;
  }

  private async getFrom(
    peer: string,
    pathAndQuery: string,
    options: { readonly signal?: AbortSignal; readonly headers?: Record<string, string> },
  ): Promise<PeerAnswer> {
    const response = await this.exchange({
      method: 'GET',
      url: new URL(pathAndQuery, peer).href,
      headers: options.headers ?? {},
      body: null,
      timeoutMs: this.requestTimeoutMs,
      signal: options.signal ?? neverAborted,
    });
    return { status: response.status, body: response.body, peer };
  }
}

const neverAborted = new AbortController().signal;
