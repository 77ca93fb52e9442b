// Shared fixtures for running FileStorage over the simulated disk: a deterministic
// Environment, an event pump standing in for the simulator's event queue, and a harness
// that runs the conformance suite against FileStorage on a SimFileSystem.
import { SimFileSystem, type SimFileSystemOptions } from '../../src/sim/sim-file-system.ts';
import { FileStorage, type FileStorageOptions } from '../../src/storage/file-storage.ts';
import type { OpenedStorage, StorageEvent } from '../../src/storage/types.ts';
import type { Environment } from '../../src/util/environment.ts';
import { Prng } from '../../src/util/prng.ts';
import { CLUSTER_ID, type Harness, NODE_ID } from './helpers.ts';

export const SIM_DATA_DIR = '/disk/data';

/** Virtual time that moves only when `advance` says; timers are not the storage's business. */
export function testEnvironment(prng: Prng): Environment & { advance(ms: number): void } {
  let nowMs = 1_700_000_000_000;
  return {
    nowMs: () => nowMs,
    monotonicMs: () => nowMs,
    setTimer: () => {
      throw new Error('the storage sets no timers');
    },
    random: () => prng.next(),
    randomHex: (byteCount) =>
      Array.from({ length: byteCount }, () => prng.below(256).toString(16).padStart(2, '0')).join(
        '',
      ),
    advance: (ms) => {
      nowMs += ms;
    },
  };
}

/**
 * Holds the disk's operations until `step` fires one, picked by the PRNG among those
 * waiting (independent files complete in any order), draining microtasks after each: what
 * the simulator's event queue does.
 */
export class EventPump {
  private waiting: (() => void)[] = [];
  firedCount = 0;

  constructor(
    private readonly prng: Prng,
    private readonly environment?: { advance(ms: number): void },
  ) {}

  readonly schedule = (_delayMs: number, fire: () => void): void => {
    this.waiting.push(fire);
  };

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Fires one waiting operation; false when none waits. */
  async step(): Promise<boolean> {
    await drainMicrotasks();
    if (this.waiting.length === 0) return false;
    const [fire] = this.waiting.splice(this.prng.below(this.waiting.length), 1);
    this.environment?.advance(1);
    fire!();
    this.firedCount += 1;
    await drainMicrotasks();
    return true;
  }

  /** A crash: what was waiting never completes. */
  dropAll(): void {
    this.waiting = [];
  }

  /** Fires operations until `promise` settles; throws when it waits on nothing. */
  async settle<T>(promise: Promise<T>, stepsMax = 1_000_000): Promise<T> {
    type Outcome = { readonly value: T } | { readonly error: unknown };
    // A holder, not a variable: the callbacks set it between the awaits below.
    const settled: { outcome: Outcome | null } = { outcome: null };
    promise.then(
      (value) => {
        settled.outcome = { value };
      },
      (error: unknown) => {
        settled.outcome = { error };
      },
    );
    // Bounded by stepsMax, and by the operations the storage issues.
    for (let stepCount = 0; settled.outcome === null; stepCount++) {
      if (stepCount >= stepsMax) throw new Error(`not settled after ${stepsMax} operations`);
      const fired = await this.step();
      if (!fired && settled.outcome === null) throw new Error('waits on no disk operation');
    }
    const outcome: Outcome = settled.outcome;
    if ('error' in outcome) throw outcome.error;
    return outcome.value;
  }
}

function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** FileStorage.open over `files`, with the test identity and small segments. */
export function openOnSimDisk(
  files: SimFileSystem,
  environment: Environment,
  options: Partial<FileStorageOptions> = {},
): Promise<OpenedStorage<FileStorage>> {
  return FileStorage.open({
    dataDir: SIM_DATA_DIR,
    clusterId: CLUSTER_ID,
    nodeId: NODE_ID,
    segmentBytesMax: 4096,
    files,
    environment,
    ...options,
  });
}

/** The conformance harness: FileStorage on a SimFileSystem whose operations complete at once. */
export function simHarness(
  options: Partial<SimFileSystemOptions> = {},
): Harness & { readonly files: SimFileSystem } {
  const prng = new Prng(0x5eed);
  const files = new SimFileSystem({ prng: prng.fork(), ...options });
  const environment = testEnvironment(prng.fork());
  const events: StorageEvent[] = [];
  return {
    name: 'FileStorage on SimFileSystem',
    files,
    events,
    open: (openOptions = {}) =>
      openOnSimDisk(files, environment, {
        segmentBytesMax: 16 * 1024,
        ...openOptions,
        log: (event) => events.push(event),
      }),
    setFormatVersion: async (formatVersion) => {
      const path = `${SIM_DATA_DIR}/meta.json`;
      // As another release writes it: with no checksum of this one's.
      const { checksum: _, ...meta } = JSON.parse(
        Buffer.from(await files.readFile(path)).toString('utf8'),
      );
      const handle = await files.open(path, 'createOrTruncate');
      await handle.write([Buffer.from(JSON.stringify({ ...meta, formatVersion }))], 0);
      await handle.datasync();
      await handle.close();
      await files.syncDirectory(SIM_DATA_DIR);
    },
    cleanup: async () => undefined,
  };
}
