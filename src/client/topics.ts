/**
 * The topic rule the SDK applies before anything is sent, as the nodes apply theirs
 * (docs/api.md): a broadcast on a topic they refuse would be refused, and a subscription to
 * a reserved one would be taken and then never yield a message.
 */
import { ClientError } from './errors.ts';

const topicBytesMax = 255;
/** Topics starting with this are the system's own records, never delivered to a reader. */
const reservedTopicPrefix = '$';

/** Refuses a topic that is no string, is over 255 bytes of UTF-8, or is reserved. */
export function checkTopic(topic: unknown): void {
  if (
    topic !== undefined &&
    (typeof topic !== 'string' ||
      Buffer.byteLength(topic) > topicBytesMax ||
      topic.startsWith(reservedTopicPrefix))
  ) {
    throw new ClientError(
      'invalid_argument',
      `a topic is a string of at most ${topicBytesMax} bytes, not starting with ${reservedTopicPrefix}`,
      { field: 'topic' },
    );
  }
}
