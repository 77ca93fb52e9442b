/** The message store: delivered messages on disk, by position, kept as retention says. */
export { compactedCopy } from './compaction.ts';
export { DiskStoreFiles, MemoryStoreFiles, type StoreFiles } from './files.ts';
export type { StoredMessage, StoredRun } from './record.ts';
export {
  decodeBody,
  decodeRecordAt,
  emptyLayout,
  encodeRecord,
  layoutOf,
  type RecordLayout,
  type RecordRead,
  recordBytesOf,
  recordLayoutOffsets,
  writeRecord,
} from './record.ts';
export {
  defaultSegmentBytesMax,
  MessageStore,
  type MessageStoreOptions,
  type SegmentSummary,
  type StoreRange,
  segmentBytesMin,
  type TopicPage,
} from './store.ts';
