/**
 * `abcast start --force-new-cluster`: turns one node's data directory into a one-node cluster
 * when the majority is lost for good, as etcd's flag of that name does (docs/ops.md).
 */
import { encodeConfiguration, makeConfiguration } from '../../raft/config.ts';
import { FileStorage } from '../../storage/file-storage.ts';
import { CliError } from './errors.ts';

/**
 * Makes `dataDir` a one-node cluster of `id`: appends a configuration entry with `id` as the
 * only voter, in the current term, after everything in its log. Raft's safety is given up on
 * purpose: entries this node holds that were never committed may now commit, and entries
 * the lost majority committed without this node are gone. Returns the ids it held as members.
 */
export async function forceNewCluster(options: {
  readonly dataDir: string;
  readonly clusterId: string;
  readonly id: string;
}): Promise<{ readonly lastIndex: number; readonly term: number }> {
  const { storage, persisted } = await FileStorage.open({
    dataDir: options.dataDir,
    clusterId: options.clusterId,
    nodeId: options.id,
  });
  try {
    const last = persisted.entries[persisted.entries.length - 1];
    const lastIndex = last?.index ?? persisted.snapshot?.meta.index ?? 0;
    const lastTerm = last?.term ?? persisted.snapshot?.meta.term ?? 0;
    if (lastIndex === 0 || persisted.hardState === null) {
      throw new CliError(`${options.dataDir} holds no log: nothing to make a cluster of`);
    }
    const term = Math.max(persisted.hardState.term, lastTerm);
    await storage.append({
      hardState: { term, vote: persisted.hardState.vote, commit: persisted.hardState.commit },
      snapshot: null,
      entries: [
        {
          index: lastIndex + 1,
          term,
          kind: 'config',
          data: encodeConfiguration(makeConfiguration([options.id], [])),
        },
      ],
    });
    return { lastIndex: lastIndex + 1, term };
  } finally {
    await storage.close();
  }
}
