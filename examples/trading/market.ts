/**
 * The trading example's events and the one rule every agent applies: an order fills at the
 * latest price of its symbol seen before it in the total order. Because all agents read
 * `orders` and `prices` in one order, they compute the same fills without talking to each
 * other; the same function over the log read back from a node is the reference.
 */

export const ordersTopic = 'orders';
export const pricesTopic = 'prices';

export type MarketEvent =
  | {
      readonly type: 'Price_Updated';
      readonly run: string;
      readonly symbol: string;
      /** Integer cents. */
      readonly priceCents: number;
      readonly publisher: string;
      readonly seq: number;
    }
  | {
      readonly type: 'Order_Placed';
      readonly run: string;
      readonly orderId: string;
      readonly symbol: string;
      readonly side: 'buy' | 'sell';
      readonly quantity: number;
    }
  /** The coordinator's last word, published after every other message was acknowledged. */
  | { readonly type: 'Run_Ended'; readonly run: string };

export interface Fill {
  readonly orderId: string;
  readonly symbol: string;
  readonly side: 'buy' | 'sell';
  readonly quantity: number;
  /** The latest price of the symbol before the order; null if none was published yet. */
  readonly priceCents: number | null;
  /** The order's position in the total order. */
  readonly position: number;
}

/** A message as both Topics and GET /v1/messages give it. */
export interface Positioned {
  readonly position: number;
  readonly topic: string | null;
  readonly payload: unknown;
}

/** One agent's view of the market: latest prices and the fills so far. */
export class MarketView {
  readonly fills: Fill[] = [];
  private readonly latestPriceCents = new Map<string, number>();
  private lastPosition = 0;
  /** Messages seen at or below an earlier position: the order was not one order. */
  outOfOrderCount = 0;
  ended = false;

  constructor(private readonly run: string) {}

  /** Applies one message; false once the run's end marker was seen. */
  apply(message: Positioned): boolean {
    if (message.position <= this.lastPosition) this.outOfOrderCount += 1;
    this.lastPosition = Math.max(this.lastPosition, message.position);
    const event = parseMarketEvent(message.payload);
    // Other runs (an existing cluster runs the example again) and foreign input: skipped.
    if (event === null || event.run !== this.run) return true;
    if (event.type === 'Run_Ended') {
      this.ended = true;
      return false;
    }
    if (event.type === 'Price_Updated' && message.topic === pricesTopic) {
      this.latestPriceCents.set(event.symbol, event.priceCents);
    } else if (event.type === 'Order_Placed' && message.topic === ordersTopic) {
      this.fills.push({
        orderId: event.orderId,
        symbol: event.symbol,
        side: event.side,
        quantity: event.quantity,
        priceCents: this.latestPriceCents.get(event.symbol) ?? null,
        position: message.position,
      });
    }
    return true;
  }
}

/** The event in `payload`, or null when it is not one of ours (it is then ignored). */
export function parseMarketEvent(payload: unknown): MarketEvent | null {
  const value = payload as Record<string, unknown>;
  if (typeof value !== 'object' || value === null || typeof value.run !== 'string') return null;
  switch (value.type) {
    case 'Price_Updated':
      return isName(value.symbol) &&
        isCount(value.priceCents) &&
        isName(value.publisher) &&
        isCount(value.seq)
        ? (value as MarketEvent)
        : null;
    case 'Order_Placed':
      return isName(value.orderId) &&
        isName(value.symbol) &&
        (value.side === 'buy' || value.side === 'sell') &&
        isCount(value.quantity)
        ? (value as MarketEvent)
        : null;
    case 'Run_Ended':
      return value as MarketEvent;
    default:
      return null;
  }
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 64;
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 1;
}
