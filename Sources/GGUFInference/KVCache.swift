import MServeSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A worker's KV cache memory: fixed-size blocks of `blockTokens` positions (every layer's keys and
/// values for them), from one anonymous mapping made at start for --kv-cache-tokens.  Sequences
/// take blocks as they grow and give them back when they end, so memory is bounded by the setting
/// rather than by what the requests happen to ask, and nothing is copied as a sequence grows (the
/// arrays it replaces were reallocated and copied at every doubling).  Pages are touched only when
/// first written, and freed blocks are handed out again most recent first, so a worker's resident
/// memory follows the most it has held at once, not the whole mapping.
///
/// Prefix caching (vLLM's automatic prefix caching, llama.cpp's `cache_prompt`): a full block is
/// known by the hash of every token up to its end, so a sequence whose prompt begins as an earlier
/// one did takes the earlier one's blocks, read-only and counted, and computes only the rest.  A
/// block nobody holds stays cached until its room is needed, the least recently used first.
///
/// A block's layout: for each layer, `blockTokens` rows of keys (`kvDim` floats each), then as many
/// of values.
public final class KVBlockPool: @unchecked Sendable {  // the mapping's pointer: set once, never moved
    public static let defaultBlockTokens = 16

    public let blockTokens: Int
    public let blockCount: Int
    /// Whether full blocks are kept for the prompts that begin alike (prefix caching).
    public let caching: Bool
    let layers: Int
    let kvDim: Int
    /// Floats in one block, and from a layer's keys to its values within one.
    let blockFloats: Int
    let valueOffset: Int
    let base: UnsafeMutablePointer<Float>
    private let mappedBytes: Int

    /// A cached block: the hash of every token up to its end, the block before it, its tokens.
    private struct Entry {
        let hash: UInt64
        let parent: Int32
        let tokens: [Int32]
    }

    /// Who holds which block, and what the cached ones hold.
    private struct Book {
        /// Blocks nobody holds that cache nothing, the most recently freed last (taken first: its
        /// pages are resident already).
        var free: [Int32]
        var holders: [Int32]
        var entries: [Entry?]
        var byHash: [UInt64: Int32] = [:]
        /// When each block was last held (a counter): the cached block unheld longest goes first.
        var lastUsed: [UInt64]
        var clock: UInt64 = 0
        /// Cached blocks nobody holds (room to take when `free` runs out).
        var idle = 0
        var stats = PrefixCacheStats()
    }
    private let book: Locked<Book>

    /// A pool of `tokens` positions (rounded down to whole blocks, at least one) for `config`'s
    /// layers and heads.
    public init(config: LlamaModel.Config, tokens: Int, blockTokens: Int = KVBlockPool.defaultBlockTokens, caching: Bool = false) throws(GGUFError) {
        precondition(blockTokens > 0)
        self.blockTokens = blockTokens
        self.caching = caching
        blockCount = max(1, tokens / blockTokens)
        layers = config.layers
        kvDim = config.kvDim
        valueOffset = blockTokens * kvDim
        blockFloats = layers * 2 * valueOffset
        mappedBytes = blockCount * blockFloats * MemoryLayout<Float>.size
        // Reserved, not committed: the kernel gives pages as they are first written.
        guard let p = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0), p != MAP_FAILED else {
            throw GGUFError("KV cache", "cannot map \(mappedBytes >> 20) MiB for \(blockCount * blockTokens) tokens (--kv-cache-tokens)")
        }
        base = p.bindMemory(to: Float.self, capacity: blockCount * blockFloats)
        book = Locked(
            Book(
                free: (0..<Int32(blockCount)).reversed(), holders: Array(repeating: 0, count: blockCount),
                entries: Array(repeating: nil, count: blockCount), lastUsed: Array(repeating: 0, count: blockCount)))
    }

    deinit { munmap(base, mappedBytes) }

    /// Blocks a sequence could take now: free ones, and cached ones nobody holds.
    public var freeBlocks: Int { book.withLock { $0.free.count + $0.idle } }

    /// Blocks that hold a cached prefix.
    public var cachedBlocks: Int { book.withLock { $0.byHash.count } }

    /// Prefix lookups and what they found, since the start.
    public var stats: PrefixCacheStats { book.withLock { $0.stats } }

    /// The blocks `tokens` positions take.
    public func blocks(for tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }

    /// `count` blocks, or nil (none taken) when fewer can be had.  Free blocks first; then the
    /// cached blocks nobody holds, least recently used first, forgotten as they are taken.
    func take(_ count: Int) -> [Int32]? {
        book.withLock { b in
            guard b.free.count + b.idle >= count else { return nil }
            var out: [Int32] = []
            out.reserveCapacity(count)
            while out.count < count {
                if let f = b.free.popLast() {
                    out.append(f)
                    continue
                }
                var oldest: Int32 = -1
                for i in 0..<blockCount where b.holders[i] == 0 && b.entries[i] != nil {
                    if oldest < 0 || b.lastUsed[i] < b.lastUsed[Int(oldest)] { oldest = Int32(i) }
                }
                guard oldest >= 0, let entry = b.entries[Int(oldest)] else { break }  // `idle` says there is one
                b.byHash[entry.hash] = nil
                b.entries[Int(oldest)] = nil
                b.idle -= 1
                out.append(oldest)
            }
            for block in out { b.holders[Int(block)] = 1 }
            return out
        }
    }

    func give(_ blocks: [Int32]) {
        guard !blocks.isEmpty else { return }
        book.withLock { b in
            for block in blocks.reversed() {
                let i = Int(block)
                b.holders[i] -= 1
                guard b.holders[i] == 0 else { continue }
                if b.entries[i] != nil {
                    b.idle += 1
                    b.clock += 1
                    b.lastUsed[i] = b.clock
                } else {
                    b.free.append(block)
                }
            }
        }
    }

    /// Holds `blocks` once more (a sequence shares another's full blocks).
    func hold(_ blocks: [Int32]) {
        book.withLock { b in
            for block in blocks { b.holders[Int(block)] += 1 }
        }
    }

    /// Copies `from`'s keys and values, every layer's, into `to`.
    func copy(_ from: Int32, to: Int32) {
        (base + Int(to) * blockFloats).update(from: base + Int(from) * blockFloats, count: blockFloats)
    }

    /// The hash of every token up to a block's end, from the one before it and the block's tokens.
    static func chain(_ previous: UInt64, _ tokens: ArraySlice<Int32>) -> UInt64 {
        var h = previous
        for t in tokens {
            h = (h ^ UInt64(UInt32(bitPattern: t))) &* 0x100_0000_01B3
            h ^= h >> 29
        }
        // SplitMix64's finalizer: every bit of the chain moves every bit of the hash.
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    /// The cached blocks that hold the longest run of `prompt`'s first whole blocks (at most
    /// `limit`), taken (held) for the caller, with their hashes.  A block matches only with the
    /// same tokens after the same block: a hash collision cannot hand over another prefix's keys.
    func lookup(_ prompt: [Int32], limit: Int) -> (blocks: [Int32], hashes: [UInt64]) {
        book.withLock { b in
            var found: [Int32] = [], hashes: [UInt64] = []
            var h: UInt64 = 0, parent: Int32 = -1
            for j in 0..<limit {
                let tokens = prompt[(j * blockTokens)..<((j + 1) * blockTokens)]
                h = KVBlockPool.chain(h, tokens)
                guard let block = b.byHash[h], let entry = b.entries[Int(block)], entry.parent == parent, entry.tokens.elementsEqual(tokens) else {
                    break
                }
                found.append(block)
                hashes.append(h)
                parent = block
            }
            for block in found {
                let i = Int(block)
                if b.holders[i] == 0 { b.idle -= 1 }
                b.holders[i] += 1
            }
            b.stats.queries += 1
            b.stats.queriedTokens += prompt.count
            if !found.isEmpty { b.stats.hits += 1 }
            b.stats.hitTokens += found.count * blockTokens
            return (found, hashes)
        }
    }

    /// `block` (held by the caller, full) now holds the prefix whose hash is `hash`; it stays
    /// cached when let go.  A prefix cached already in another block keeps that one.
    func register(_ block: Int32, hash: UInt64, parent: Int32, tokens: ArraySlice<Int32>) {
        book.withLock { b in
            guard b.byHash[hash] == nil, b.entries[Int(block)] == nil else { return }
            b.byHash[hash] = block
            b.entries[Int(block)] = Entry(hash: hash, parent: parent, tokens: Array(tokens))
        }
    }

    /// Block `block`'s keys for `layer` (its values follow at `valueOffset`).
    @inline(__always) func keys(_ block: Int32, layer: Int) -> UnsafeMutablePointer<Float> {
        base + Int(block) * blockFloats + layer * 2 * valueOffset
    }
}

/// What the prefix cache was asked and found: lookups (one per sequence), those that found at
/// least one block, and the prompt tokens asked for and found.
public struct PrefixCacheStats: Equatable, Sendable {
    public var queries = 0, hits = 0, queriedTokens = 0, hitTokens = 0
    public init() {}
}

/// One sequence's KV cache: the positions it holds and the pool blocks that hold them, in order.
/// Its blocks go back to the pool when it is released (or dropped).
public final class KVCache {
    public let pool: KVBlockPool
    /// Positions written.
    public private(set) var count = 0
    public private(set) var blocks: [Int32] = []
    /// With prefix caching: the tokens at positions 0..<count, and the hash of each full block's
    /// prefix (the blocks registered in the pool so far).
    private var tokens: [Int32] = []
    private var hashes: [UInt64] = []

    public init(pool: KVBlockPool) { self.pool = pool }

    deinit { pool.give(blocks) }

    /// An empty cache takes the pool's cached blocks that hold the longest run of `prompt`'s first
    /// whole blocks, leaving at least its last token to compute (its logits are wanted); returns
    /// the positions it now holds, which the sequence does not compute again.
    public func adopt(_ prompt: [Int32]) -> Int {
        guard pool.caching, count == 0, blocks.isEmpty, prompt.count > 1 else { return 0 }
        let found = pool.lookup(prompt, limit: (prompt.count - 1) / pool.blockTokens)
        blocks = found.blocks
        hashes = found.hashes
        count = blocks.count * pool.blockTokens
        tokens = Array(prompt[0..<count])
        return count
    }

    /// An empty cache becomes a copy of `other` (several answers to one prompt): its full blocks
    /// shared, read-only and counted (nobody writes a full block again), its part-filled last
    /// block copied, since both sequences write on into it.  False (nothing taken) if the pool has
    /// no block for the copy.
    public func fork(_ other: KVCache) -> Bool {
        precondition(count == 0 && blocks.isEmpty && other.pool === pool)
        let full = other.count / pool.blockTokens
        var mine = Array(other.blocks[0..<full])
        if other.count % pool.blockTokens != 0 {
            guard let copy = pool.take(1) else { return false }
            pool.copy(other.blocks[full], to: copy[0])
            mine.append(copy[0])
        }
        pool.hold(Array(other.blocks[0..<full]))
        blocks = mine
        count = other.count
        tokens = other.tokens
        hashes = other.hashes
        return true
    }

    /// Takes the blocks that `count + tokens` positions need; false (nothing taken) if the pool is short.
    func makeRoom(for tokens: Int) -> Bool {
        let missing = pool.blocks(for: count + tokens) - blocks.count
        guard missing > 0 else { return true }
        guard let more = pool.take(missing) else { return false }
        blocks += more
        return true
    }

    /// `new` tokens' keys and values are written at the next positions: with prefix caching, each
    /// block they fill is registered for the prompts that begin alike.
    func append(_ new: [Int32]) {
        count += new.count
        guard pool.caching else { return }
        tokens += new
        let size = pool.blockTokens
        while (hashes.count + 1) * size <= count {
            let j = hashes.count
            let slice = tokens[(j * size)..<((j + 1) * size)]
            let hash = KVBlockPool.chain(hashes.last ?? 0, slice)
            pool.register(blocks[j], hash: hash, parent: j > 0 ? blocks[j - 1] : -1, tokens: slice)
            hashes.append(hash)
        }
    }

    /// Gives every block back; the cache is then empty.
    public func release() {
        pool.give(blocks)
        blocks = []
        count = 0
        tokens = []
        hashes = []
    }

    /// Where position `position`'s keys are for `layer` (its values at `pool.valueOffset` further).
    @inline(__always) func keys(at position: Int, layer: Int) -> UnsafeMutablePointer<Float> {
        pool.keys(blocks[position / pool.blockTokens], layer: layer) + (position % pool.blockTokens) * pool.kvDim
    }
}

/// One sequence's cache at one layer as attention reads it: runs of consecutive positions, one per block.
struct KVView {
    let pool: KVBlockPool
    let blocks: [Int32]
    let layer: Int
    /// Floats from one position's keys (or values) to the next.
    var stride: Int { pool.kvDim }

    init(cache: KVCache, layer: Int) {
        pool = cache.pool
        blocks = cache.blocks
        self.layer = layer
    }

    /// Calls `body(keys, values, first, count)` for each block's share of `positions`, in order:
    /// `keys` and `values` point at the run's first position, `first` is its index in `positions`.
    @inline(__always) func runs(_ positions: Range<Int>, _ body: (UnsafePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void) {
        let size = pool.blockTokens
        var p = positions.lowerBound
        while p < positions.upperBound {
            let slot = p % size, count = min(size - slot, positions.upperBound - p)
            let keys = pool.keys(blocks[p / size], layer: layer) + slot * pool.kvDim
            body(keys, keys + pool.valueOffset, p - positions.lowerBound, count)
            p += count
        }
    }
}
