/**
 * Replicated state machines and agent coordination on the total order:
 * `import { ReplicatedStateMachine, TaskBoard, ... } from 'abcast/agents'`.
 */

export {
  type ArriveOptions,
  Barrier,
  type BarrierOptions,
  type BarrierPassed,
  type BarrierStatus,
  barrierMachine,
} from './barrier.ts';
export { ClientLog, type ClientLogOptions } from './client-log.ts';
export type { Outcome } from './determinism.ts';
export { AgentError, type AgentErrorCode } from './errors.ts';
export {
  type AcquireOptions,
  FencingGuard,
  type Lease,
  Locks,
  type LocksOptions,
  locksMachine,
} from './locks.ts';
export type { AppendAnswer, FollowOptions, LogEntry, LogEvent, SharedLog } from './log.ts';
export { MemoryLog, type MemoryLogOptions } from './memory-log.ts';
export { NodeLog } from './node-log.ts';
export {
  type JoinOptions,
  Presence,
  PresenceHandle,
  type PresenceOptions,
  type WatchOptions,
} from './presence.ts';
export { type PresenceEvent, type PresenceMember, presenceMachine } from './presence-machine.ts';
export { ReplicatedStateMachine } from './rsm.ts';
export {
  FileSnapshotStore,
  MemorySnapshotStore,
  type SnapshotStore,
  type StateSnapshot,
} from './snapshots.ts';
export { type LogSource, toSharedLog } from './source.ts';
export type {
  AppliedCommand,
  ApplyContext,
  ReplicaOptions,
  StateMachine,
} from './state-machine.ts';
export {
  type Claim,
  type ClaimLostReason,
  type ClaimOutcome,
  type NextOptions,
  type RenewOutcome,
  TaskBoard,
  type TaskBoardOptions,
  type TaskCounts,
  type TaskStatus,
  type TaskView,
  taskBoardMachine,
} from './taskboard.ts';
export {
  type SubscribeOptions as TopicSubscribeOptions,
  type TopicMessage,
  TopicSubscription,
  Topics,
  type TopicsOptions,
} from './topics.ts';
