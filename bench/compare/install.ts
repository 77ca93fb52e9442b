/**
 * The other servers come from Debian's packages: etcd-server (3.4), zookeeper and
 * zookeeperd (3.8), nats-server (2.9); and abcast's POST row takes its load from `wrk`
 * (bench/compare/wrk.ts). Whatever is missing is installed with apt-get (as
 * root, or through `sudo -n`), and any system service the packages start is stopped: the
 * race runs its own clusters on free ports and wants the machine to itself.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { SystemId } from './args.ts';
import { zookeeperJar } from './zookeeper.ts';

interface Requirement {
  readonly system: SystemId;
  readonly packages: readonly string[];
  readonly services: readonly string[];
  readonly present: () => boolean;
  /** The race runs without it (with a stand-in) when it may not be installed. */
  readonly optional?: boolean;
}

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const requirements: readonly Requirement[] = [
  {
    system: 'etcd',
    packages: ['etcd-server'],
    services: ['etcd'],
    present: () => onPath('etcd'),
  },
  {
    system: 'zookeeper',
    packages: ['zookeeper', 'zookeeperd'],
    services: ['zookeeper'],
    present: () => onPath('java') && existsSync(zookeeperJar),
  },
  {
    system: 'nats',
    packages: ['nats-server'],
    services: ['nats-server'],
    present: () => onPath('nats-server'),
  },
  {
    system: 'abcast',
    packages: ['wrk'],
    services: [],
    present: () => onPath('wrk'),
    // Without it the POST row takes its load from undici, and the results say so.
    optional: true,
  },
];

function asRoot(command: readonly string[]): void {
  const isRoot = process.getuid?.() === 0;
  const [file, ...args] = isRoot ? command : ['sudo', '-n', ...command];
  execFileSync(file as string, args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** Stops a service the package may have started; a service that is not running is fine. */
function stopService(name: string): void {
  const isRoot = process.getuid?.() === 0;
  const prefix = isRoot ? [] : ['sudo', '-n'];
  for (const command of [
    ['systemctl', 'stop', name],
    ['service', name, 'stop'],
  ]) {
    if (!onPath(command[0] as string)) continue;
    const [file, ...args] = [...prefix, ...command];
    spawnSync(file as string, args, { stdio: 'ignore' });
  }
}

/** Installs what `systems` need and is missing; throws if it cannot. */
export function ensureServers(systems: readonly SystemId[], install: boolean): void {
  const missing = requirements.filter(
    (requirement) => systems.includes(requirement.system) && !requirement.present(),
  );
  if (missing.length === 0) return;
  const packages = missing.flatMap((requirement) => requirement.packages);
  if (!install) {
    const needed = missing.filter((requirement) => requirement.optional !== true);
    if (needed.length === 0) return;
    const neededPackages = needed.flatMap((requirement) => requirement.packages);
    throw new Error(`missing servers; install the Debian packages ${neededPackages.join(' ')}`);
  }
  console.error(`bench:compare: installing ${packages.join(' ')} with apt-get`);
  asRoot(['apt-get', 'update']);
  asRoot(['apt-get', 'install', '-y', '--no-install-recommends', ...packages]);
  for (const requirement of missing) {
    for (const service of requirement.services) stopService(service);
    if (!requirement.present()) {
      throw new Error(`${requirement.system} is still missing after apt-get install`);
    }
  }
}
