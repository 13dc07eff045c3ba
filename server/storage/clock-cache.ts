/**
 * ClockCache: the one bounded in-process cache of the storage read side (the parcel reader, the
 * invoice indexes' recently-read invoices). Bounded by a number of entries and a total weight
 * (bytes, or UTF-16 code units: whatever `weigh` counts). It evicts by CLOCK, an approximation of
 * least recently used that keeps a hit cheap: a hit only marks its entry, where moving the entry to
 * the end on every hit (a Map delete and set) is a measurable share of a small GET. Eviction walks
 * the entries oldest first, spares a marked entry once (clearing the mark and moving it to the
 * end) and never evicts the entry being set.
 */

export interface ClockCacheOptions<V> {
  /** Entries kept at most. */
  readonly maxEntries: number;
  /** Total weight kept at most. A value heavier than this on its own is never kept. */
  readonly maxWeight: number;
  /** The weight of a value (0 or more); read once, when the value is set or shed. */
  readonly weigh: (value: V) => number;
  /**
   * When over the weight budget only, what to keep of an unmarked entry instead of evicting it
   * (e.g. a parcel's size without its bytes): a lighter value, or undefined to evict it. Without
   * `shed` the entry is evicted.
   */
  readonly shed?: (value: V) => V | undefined;
}

interface Slot<V> {
  value: V;
  weight: number;
  /** Hit since it was last (re)queued: spared once when it comes up for eviction. */
  used: boolean;
}

export class ClockCache<K, V> {
  private readonly options: ClockCacheOptions<V>;
  /** Oldest first (insertion order; a spared entry is re-inserted). */
  private readonly slots = new Map<K, Slot<V>>();
  private totalWeight = 0;

  constructor(options: ClockCacheOptions<V>) {
    this.options = options;
  }

  /** The value, marked as used; undefined when not cached. */
  get(key: K): V | undefined {
    const slot = this.slots.get(key);
    if (slot === undefined) return undefined;
    slot.used = true;
    return slot.value;
  }

  /** The value without marking it used (a look that is not a use). */
  peek(key: K): V | undefined {
    return this.slots.get(key)?.value;
  }

  /**
   * Caches the value (unmarked, newest), replacing any under the key, then evicts until within
   * both bounds. Returns false, caching nothing and dropping any old value, when the value alone
   * is heavier than `maxWeight`.
   */
  set(key: K, value: V): boolean {
    this.delete(key);
    const weight = this.options.weigh(value);
    if (weight > this.options.maxWeight) return false;
    this.slots.set(key, { value, weight, used: false });
    this.totalWeight += weight;
    this.evict(key);
    return true;
  }

  delete(key: K): boolean {
    const slot = this.slots.get(key);
    if (slot === undefined) return false;
    this.totalWeight -= slot.weight;
    return this.slots.delete(key);
  }

  clear(): void {
    this.slots.clear();
    this.totalWeight = 0;
  }

  get size(): number {
    return this.slots.size;
  }

  /** The total weight of the cached values. */
  get weight(): number {
    return this.totalWeight;
  }

  private evict(added: K): void {
    const { maxEntries, maxWeight, shed } = this.options;
    for (const [key, slot] of this.slots) {
      if (this.slots.size <= maxEntries && this.totalWeight <= maxWeight) return;
      if (key === added) continue;
      if (slot.used) {
        slot.used = false;
        this.slots.delete(key);
        this.slots.set(key, slot);
        continue;
      }
      const lighter = this.slots.size <= maxEntries && shed !== undefined ? shed(slot.value) : undefined;
      if (lighter === undefined) {
        this.delete(key);
        continue;
      }
      const weight = this.options.weigh(lighter);
      this.totalWeight += weight - slot.weight;
      slot.value = lighter;
      slot.weight = weight;
    }
  }
}
