/**
 * Runs a session-chain scenario (test/client/scenarios/*.txt) against the real SessionChain
 * and a model of the nodes' session table, and returns its transcript: every command echoed
 * as `> command`, then what the chain and the nodes did. After every command it checks that
 * no message was delivered twice and that the resolved broadcasts sit in the log in their
 * order of issue; a broken one prints a `!!` line, so no expectation can hide it.
 */
import {
  type AfterAttempt,
  type AttemptResult,
  type ChainEffect,
  type ChainResult,
  type NextStep,
  SessionChain,
} from '../../src/client/session-chain.ts';
import type { UnsafeVariant } from '../../src/client/settings.ts';

export const separator = '----';
const baseId = 'c';

export interface ScenarioScript {
  readonly header: readonly string[];
  readonly commands: readonly string[];
  /** Null when the file has no `----` part yet. */
  readonly expected: string | null;
}

export function parseScenario(name: string, text: string): ScenarioScript {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const separatorAt = lines.indexOf(separator);
  const script = separatorAt === -1 ? lines : lines.slice(0, separatorAt);
  let headerEnd = 0;
  while (script[headerEnd]?.startsWith('#')) headerEnd++;
  if (headerEnd === 0) throw new Error(`${name}: a scenario begins with a # comment`);
  const commands = script.slice(headerEnd).map((line) => line.trimEnd());
  while (commands.length > 0 && commands[commands.length - 1] === '') commands.pop();
  while (commands.length > 0 && commands[0] === '') commands.shift();
  const expected =
    separatorAt === -1
      ? null
      : lines
          .slice(separatorAt + 1)
          .join('\n')
          .replace(/\s+$/, '');
  return { header: script.slice(0, headerEnd), commands, expected };
}

export function renderScenario(script: ScenarioScript, transcript: string): string {
  return `${[...script.header, ...script.commands, separator, transcript].join('\n')}\n`;
}

/** Where a broadcast is, as the runner tracks it. */
type Phase =
  | { readonly kind: 'sending'; readonly sessionId: string; readonly seq: number }
  | { readonly kind: 'backoff'; readonly sessionId: string }
  | { readonly kind: 'waiting'; readonly sessionId: string }
  | { readonly kind: 'done'; readonly how: string };

interface Broadcast {
  readonly name: string;
  readonly id: number;
  readonly issueOrder: number;
  phase: Phase;
  /** The log index it resolved at (null: not resolved). */
  resolvedIndex: number | null;
  /** Its caller was told its outcome is unknown: it may land after later broadcasts. */
  told: boolean;
  /** Set by `hold`: a `changed` effect does not wake it while it waits; `wake` does. */
  held: boolean;
}

interface LogEntry {
  readonly sessionId: string;
  readonly seq: number;
  readonly name: string;
}

/** The nodes' session table: a session's next seq and where each seq was delivered. */
interface NodeSession {
  next: number;
  readonly indexBySeq: Map<number, number>;
}

class World {
  nowMs = 0;
  readonly chain: SessionChain;
  readonly out: string[] = [];
  readonly broadcasts = new Map<string, Broadcast>();
  readonly log: LogEntry[] = [];
  readonly sessions = new Map<string, NodeSession>();

  constructor(options: Readonly<Record<string, string>>) {
    this.chain = new SessionChain({
      baseId,
      unavailableAfterMs: Number(options.unavailable ?? 1000),
      abandonAfterMs: Number(options.abandon ?? 3000),
      unsafe: (options.unsafe as UnsafeVariant | undefined) ?? null,
    });
  }

  broadcast(name: string): Broadcast {
    const found = this.broadcasts.get(name);
    if (found === undefined) throw new Error(`no broadcast ${name}`);
    return found;
  }

  sending(name: string): Broadcast & { phase: { kind: 'sending' } } {
    const found = this.broadcast(name);
    if (found.phase.kind !== 'sending') throw new Error(`${name} has no request out`);
    return found as Broadcast & { phase: { kind: 'sending' } };
  }

  /** Asks the chain where `broadcast` goes next, and follows. */
  next(broadcast: Broadcast): void {
    const result = this.chain.next(broadcast.id, this.nowMs);
    const step: NextStep = result.step;
    // What its caller is told comes first: the chain tells before it sends on.
    this.apply(result.effects.filter((effect) => effect.kind === 'tell'));
    if (step.kind === 'send') {
      broadcast.phase = { kind: 'sending', sessionId: step.sessionId, seq: step.seq };
      this.out.push(`${broadcast.name}: send ${step.sessionId}#${step.seq}`);
    } else if (step.kind === 'wait') {
      broadcast.phase = { kind: 'waiting', sessionId: step.sessionId };
      this.out.push(`${broadcast.name}: wait for ${step.sessionId}`);
    } else {
      const { sent, client, seq } = step.failure.details;
      this.finish(broadcast, `failed ${step.failure.code} at ${client}#${seq} sent=${sent}`);
      this.out.push(`  (${step.failure.message})`);
    }
    this.apply(result.effects.filter((effect) => effect.kind !== 'tell'));
  }

  /** Feeds the outcome of `broadcast`'s request to the chain. */
  attempted(broadcast: Broadcast, outcome: AttemptResult, index: number | null): void {
    const result: ChainResult<AfterAttempt> = this.chain.attempted(
      broadcast.id,
      this.nowMs,
      outcome,
    );
    const step = result.step;
    // As the client: the input's effects first, then what the step says. Its own attempt is
    // over, and a backoff it starts listens to its session's signal as it is after them.
    const sessionId = (broadcast.phase as { sessionId: string }).sessionId;
    broadcast.phase = { kind: 'done', how: 'deciding' };
    this.apply(result.effects);
    if (step.kind === 'resolve') {
      broadcast.resolvedIndex = index;
      this.finish(broadcast, `resolved index=${index}`);
    } else if (step.kind === 'refused') {
      this.finish(broadcast, `refused ${(outcome as { code: string }).code}`);
    } else if (step.kind === 'again') {
      this.out.push(`${broadcast.name}: its session broke behind it`);
      this.next(broadcast);
    } else {
      broadcast.phase = { kind: 'backoff', sessionId };
      this.out.push(`${broadcast.name}: back off (at most ${step.waitMsMax} ms)`);
    }
  }

  finish(broadcast: Broadcast, how: string): void {
    broadcast.phase = { kind: 'done', how };
    this.out.push(`${broadcast.name}: ${how}`);
    this.apply(this.chain.finish(broadcast.id));
  }

  /** Performs effects as the client does: cut attempts and backoffs, wake waiters, tell. */
  apply(effects: readonly ChainEffect[]): void {
    for (const effect of effects) {
      if (effect.kind === 'tell') {
        const told = [...this.broadcasts.values()].find((b) => b.id === effect.flight);
        if (told !== undefined) told.told = true;
        const { sent, client, seq } = effect.failure.details;
        this.out.push(
          `${told?.name}: told ${effect.failure.code} at ${client}#${seq} sent=${sent}, sent on`,
        );
        continue;
      }
      for (const broadcast of this.broadcasts.values()) {
        const { phase } = broadcast;
        if (phase.kind === 'done' || phase.sessionId !== effect.sessionId) continue;
        if (effect.kind === 'cut' && phase.kind === 'sending') {
          this.out.push(`${broadcast.name}: attempt cut (session ${effect.sessionId} broke)`);
          this.attempted(broadcast, { kind: 'cut' }, null);
        } else if (effect.kind === 'cut' && phase.kind === 'backoff') {
          this.out.push(`${broadcast.name}: backoff cut (session ${effect.sessionId} broke)`);
          this.next(broadcast);
        } else if (effect.kind === 'changed' && phase.kind === 'waiting' && !broadcast.held) {
          this.next(broadcast);
        }
      }
    }
  }

  /** The nodes take `broadcast`'s request: what they answer, and what they delivered. */
  serve(broadcast: Broadcast & { phase: { kind: 'sending' } }): {
    outcome: AttemptResult;
    index: number | null;
  } {
    const { sessionId, seq } = broadcast.phase;
    const place = `${sessionId}#${seq} ${broadcast.name}`;
    let session = this.sessions.get(sessionId);
    if (session === undefined) {
      if (seq > 1) {
        this.out.push(`node: ${place} session_unknown`);
        return { outcome: refusal('session_unknown'), index: null };
      }
      session = { next: 1, indexBySeq: new Map() };
      this.sessions.set(sessionId, session);
    }
    if (seq < session.next) {
      const index = session.indexBySeq.get(seq) ?? null;
      this.out.push(`node: ${place} duplicate of index ${index}`);
      return { outcome: { kind: 'answered' }, index };
    }
    if (seq > session.next) {
      this.out.push(`node: ${place} held behind seq ${session.next}, then sequence_gap`);
      return { outcome: { kind: 'failed', reason: 'node 409 sequence_gap' }, index: null };
    }
    this.log.push({ sessionId, seq, name: broadcast.name });
    session.indexBySeq.set(seq, this.log.length);
    session.next += 1;
    this.out.push(`node: ${place} delivered at index ${this.log.length}`);
    return { outcome: { kind: 'answered' }, index: this.log.length };
  }

  /** Properties every step keeps: at most once, and resolved ones in order of issue. */
  check(): void {
    const counts = new Map<string, number>();
    for (const entry of this.log) counts.set(entry.name, (counts.get(entry.name) ?? 0) + 1);
    for (const [name, count] of counts) {
      if (count > 1) this.out.push(`!! at most once: ${name} delivered ${count} times`);
    }
    const resolved = [...this.broadcasts.values()]
      .filter((b) => b.resolvedIndex !== null && !b.told)
      .sort((x, y) => x.issueOrder - y.issueOrder);
    for (let at = 1; at < resolved.length; at++) {
      if ((resolved[at]!.resolvedIndex as number) < (resolved[at - 1]!.resolvedIndex as number)) {
        this.out.push(`!! order: ${resolved[at]!.name} sits before ${resolved[at - 1]!.name}`);
      }
    }
  }
}

function refusal(code: string): AttemptResult {
  return { kind: 'refused', code, endpoint: 'node' };
}

function argumentsOf(words: readonly string[]): {
  names: string[];
  options: Record<string, string>;
} {
  const names: string[] = [];
  const options: Record<string, string> = {};
  for (const word of words) {
    const equals = word.indexOf('=');
    if (equals < 0) names.push(word);
    else options[word.slice(0, equals)] = word.slice(equals + 1);
  }
  return { names, options };
}

/** One handler per command; each reads its words and acts on the world. */
const commands: Record<
  string,
  (world: World, names: string[], options: Record<string, string>) => void
> = {
  issue(world, names) {
    for (const name of names) {
      if (world.broadcasts.has(name)) throw new Error(`${name} issued twice`);
      const broadcast: Broadcast = {
        name,
        id: world.chain.issue(world.nowMs),
        issueOrder: world.broadcasts.size,
        phase: { kind: 'done', how: 'not started' },
        resolvedIndex: null,
        told: false,
        held: false,
      };
      world.broadcasts.set(name, broadcast);
      world.next(broadcast);
    }
  },
  time(world, names) {
    const text = names[0] ?? '';
    const ms = Number(text.replace(/^\+/, ''));
    if (!text.startsWith('+') || !Number.isSafeInteger(ms)) throw new Error('time +<ms>');
    world.nowMs += ms;
    world.out.push(`(now ${world.nowMs} ms)`);
  },
  deliver(world, names) {
    for (const name of names) {
      const broadcast = world.sending(name);
      const { outcome, index } = world.serve(broadcast);
      world.attempted(broadcast, outcome, index);
    }
  },
  lose(world, names) {
    for (const name of names) {
      const broadcast = world.sending(name);
      world.serve(broadcast);
      world.out.push(`net: the answer to ${name} is lost`);
      world.attempted(broadcast, { kind: 'failed', reason: 'node timeout' }, null);
    }
  },
  drop(world, names) {
    for (const name of names) {
      const broadcast = world.sending(name);
      world.out.push(`net: the request of ${name} is lost`);
      world.attempted(broadcast, { kind: 'failed', reason: 'node timeout' }, null);
    }
  },
  refuse(world, names, options) {
    const code = options.code;
    if (code === undefined) throw new Error('refuse <names> code=<code>');
    for (const name of names) {
      const broadcast = world.sending(name);
      world.out.push(`node: ${broadcast.phase.sessionId}#${broadcast.phase.seq} ${name} ${code}`);
      world.attempted(broadcast, refusal(code), null);
    }
  },
  forget(world, names) {
    for (const name of names) {
      world.sessions.delete(name);
      world.out.push(`node: forgot session ${name}`);
    }
  },
  // The client wakes a waiting broadcast asynchronously, so others may move on, and sessions
  // break and retire, before it asks `next` again; the runner otherwise wakes waiters at
  // once, in order of issue. `hold` keeps the named ones asleep through `changed` effects
  // (cuts still reach them); `wake` asks `next` for each waiting one, in the order named.
  hold(world, names) {
    for (const name of names) world.broadcast(name).held = true;
  },
  wake(world, names) {
    for (const name of names) {
      const broadcast = world.broadcast(name);
      if (!broadcast.held) throw new Error(`${name} is not held`);
      broadcast.held = false;
      if (broadcast.phase.kind === 'waiting') world.next(broadcast);
    }
  },
  retry(world, names) {
    for (const name of names) {
      const broadcast = world.broadcast(name);
      if (broadcast.phase.kind !== 'backoff') throw new Error(`${name} is not backing off`);
      world.next(broadcast);
    }
  },
  log(world) {
    const entries = world.log.map((e, at) => `${at + 1}=${e.sessionId}#${e.seq}:${e.name}`);
    world.out.push(`log: ${entries.join(' ') || 'empty'}`);
  },
};

export function runScenario(script: ScenarioScript): string {
  let world: World | null = null;
  const transcript: string[] = [];
  for (const line of script.commands) {
    if (line === '' || line.startsWith('#')) {
      transcript.push(line);
      continue;
    }
    transcript.push(`> ${line.trim()}`);
    const [command = '', ...words] = line.trim().split(/\s+/);
    const { names, options } = argumentsOf(words);
    if (command === 'config') {
      if (world !== null) throw new Error('config comes first, once');
      world = new World(options);
      continue;
    }
    world ??= new World({});
    const handler = commands[command];
    if (handler === undefined) throw new Error(`unknown command ${command}`);
    handler(world, names, options);
    world.check();
    transcript.push(...world.out.splice(0));
  }
  return transcript.join('\n');
}
