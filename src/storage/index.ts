/** Durable storage for a Raft node: the interface, its disk and in-memory implementations. */
export { crc32, crc32IsNative } from '../util/crc32.ts';
export { StorageError, type StorageErrorCode, type StorageErrorDetails } from './errors.ts';
export { DEFAULT_SEGMENT_BYTES_MAX, FileStorage, type FileStorageOptions } from './file-storage.ts';
export { DEFAULT_QUEUE_LIMITS, type QueueLimits } from './group-commit.ts';
export { MemoryDisk, MemoryStorage, type MemoryStorageOptions } from './memory-storage.ts';
export {
  type AppendRequest,
  type OpenedStorage,
  type RaftStorage,
  STORAGE_FORMAT_VERSION,
  type StorageCounters,
  type StorageEvent,
  type StorageLogger,
  type StorageMetadata,
} from './types.ts';
