// The local order book of one market: exact from a depth snapshot plus diffs.
// Each diff must start at the previous last_update_id + 1; a gap means frames were lost,
// so the book marks itself unsynced and asks for a fresh snapshot (onGap).

import { cmp, isZero } from "./decimal.js";

export class Book {
  constructor(market, onGap) {
    this.market = market;
    this.onGap = onGap;
    this.bids = new Map(); // price text -> quantity text
    this.asks = new Map();
    this.lastUpdateId = null;
    this.synced = false;
  }

  snapshot(data) {
    this.bids = new Map(data.bids.map(([p, q]) => [p, q]));
    this.asks = new Map(data.asks.map(([p, q]) => [p, q]));
    this.lastUpdateId = data.last_update_id;
    this.synced = true;
  }

  // Returns true when the book changed.
  diff(data) {
    if (!this.synced) return false;
    if (data.last_update_id <= this.lastUpdateId) return false; // already applied
    if (data.first_update_id > this.lastUpdateId + 1 || data.first_update_id <= this.lastUpdateId) {
      // A diff that skips ids (or straddles ours) cannot be applied exactly.
      this.synced = false;
      this.onGap(this);
      return false;
    }
    for (const [price, quantity] of data.bids) set(this.bids, price, quantity);
    for (const [price, quantity] of data.asks) set(this.asks, price, quantity);
    this.lastUpdateId = data.last_update_id;
    return true;
  }

  levels(side) {
    const map = side === "bids" ? this.bids : this.asks;
    const sign = side === "bids" ? -1 : 1;
    return [...map.entries()].sort((a, b) => sign * cmp(a[0], b[0]));
  }
}

function set(map, price, quantity) {
  if (isZero(quantity)) map.delete(price);
  else map.set(price, quantity);
}
