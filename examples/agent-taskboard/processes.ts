/**
 * The agents as child processes: fork ./agent.ts under tsx, collect what each tells over
 * IPC, stop them with a `stop` message (SIGKILL past a deadline), or SIGKILL one to crash it.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ExampleError, pollUntil } from '../support/errors.ts';
import type { AgentMessage, AgentSettings } from './protocol.ts';

const agentEntry = fileURLToPath(new URL('./agent.ts', import.meta.url));
const tsxLoader = import.meta.resolve('tsx');
const stopTimeoutMs = 15_000;
/** An agent's messages kept, far above what a run sends (two or three per task). */
const messagesKeptMax = 1_000_000;

export class AgentProcess {
  readonly messages: AgentMessage[] = [];
  readonly exited: Promise<void>;
  /** Called with every message as it arrives (after it is kept). */
  onMessage: ((message: AgentMessage) => void) | null = null;
  private stderrTail = '';

  private constructor(
    readonly agentId: string,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (message: AgentMessage) => {
      if (this.messages.length < messagesKeptMax) this.messages.push(message);
      this.onMessage?.(message);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-4_096);
    });
    this.exited = new Promise((done) => {
      child.once('exit', () => done());
      child.once('error', () => done());
    });
  }

  static start(settings: AgentSettings): AgentProcess {
    const child = fork(agentEntry, [JSON.stringify(settings)], {
      execArgv: ['--import', tsxLoader],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    return new AgentProcess(settings.agentId, child);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How the process ended: an exit code, a signal, or null while it runs. */
  get ending(): string | null {
    if (this.child.signalCode !== null) return this.child.signalCode;
    return this.child.exitCode === null ? null : `exit ${this.child.exitCode}`;
  }

  get errorOutput(): string {
    return this.stderrTail.trim();
  }

  has(type: AgentMessage['type']): boolean {
    return this.messages.some((message) => message.type === type);
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.exited;
  }

  /** Asks the agent to finish its loop; SIGKILLs it if it has not exited by the deadline. */
  async stop(): Promise<void> {
    if (!this.running) return;
    if (this.child.connected) this.child.send({ type: 'stop' }, () => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), stopTimeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Resolves once every agent said it is ready; fails if one exits or fails first. */
export async function waitForAgents(agents: readonly AgentProcess[], timeoutMs: number) {
  await pollUntil(
    () => {
      const failed = agents.find((agent) => agent.has('failed') || !agent.running);
      if (failed !== undefined) {
        throw new ExampleError(
          'cluster_not_ready',
          `agent ${failed.agentId} did not start: ${failed.errorOutput || failed.ending}`,
        );
      }
      return agents.every((agent) => agent.has('ready')) ? true : undefined;
    },
    `${agents.length} agents to open the board`,
    timeoutMs,
  );
}
