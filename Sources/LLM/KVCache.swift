#if canImport(Glibc)
import Glibc
#endif
import MServePOSIX

/// A worker's KV cache memory: fixed-size blocks of `blockTokens` positions (every layer's keys and
/// values for them), from one anonymous mapping made at start for --kv-cache-tokens.  Sequences
/// take blocks as they grow and give them back when they end, so memory is bounded by the setting
/// rather than by what the requests happen to ask, nothing is copied as a sequence grows (the
/// arrays it replaces were reallocated and copied at every doubling), and a block can later be
/// shared by the sequences whose prompts begin alike (prefix caching).  Pages are touched only when
/// first written, and freed blocks are handed out again most recent first, so a worker's resident
/// memory follows the most it has held at once, not the whole mapping.
///
/// A block's layout: for each layer, `blockTokens` rows of keys (`kvDim` floats each), then as many
/// of values.
public final class KVBlockPool: @unchecked Sendable {   // the mapping's pointer: set once, never moved
    public static let defaultBlockTokens = 16

    public let blockTokens: Int
    public let blockCount: Int
    let layers: Int
    let kvDim: Int
    /// Floats in one block, and from a layer's keys to its values within one.
    let blockFloats: Int
    let valueOffset: Int
    let base: UnsafeMutablePointer<Float>
    private let mappedBytes: Int
    /// Free blocks, the most recently freed last (taken first: its pages are resident already).
    private let free: Locked<[Int32]>

    /// A pool of `tokens` positions (rounded down to whole blocks, at least one) for `config`'s
    /// layers and heads.
    public init(config: LlamaModel.Config, tokens: Int, blockTokens: Int = KVBlockPool.defaultBlockTokens) throws(GGUFError) {
        precondition(blockTokens > 0)
        self.blockTokens = blockTokens
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
        free = Locked((0..<Int32(blockCount)).reversed())
    }

    deinit { munmap(base, mappedBytes) }

    /// Blocks free now.
    public var freeBlocks: Int { free.withLock { $0.count } }

    /// The blocks `tokens` positions take.
    public func blocks(for tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }

    /// `count` blocks, or nil (none taken) when fewer are free.
    func take(_ count: Int) -> [Int32]? {
        free.withLock { f in
            guard f.count >= count else { return nil }
            defer { f.removeLast(count) }
            return f.suffix(count).reversed()
        }
    }

    func give(_ blocks: [Int32]) {
        guard !blocks.isEmpty else { return }
        free.withLock { $0.append(contentsOf: blocks.reversed()) }
    }

    /// Block `block`'s keys for `layer` (its values follow at `valueOffset`).
    @inline(__always) func keys(_ block: Int32, layer: Int) -> UnsafeMutablePointer<Float> {
        base + Int(block) * blockFloats + layer * 2 * valueOffset
    }
}

/// One sequence's KV cache: the positions it holds and the pool blocks that hold them, in order.
/// Its blocks go back to the pool when it is released (or dropped).
public final class KVCache {
    public let pool: KVBlockPool
    /// Positions written.
    public internal(set) var count = 0
    public private(set) var blocks: [Int32] = []

    public init(pool: KVBlockPool) { self.pool = pool }

    deinit { pool.give(blocks) }

    /// Takes the blocks that `count + tokens` positions need; false (nothing taken) if the pool is short.
    func makeRoom(for tokens: Int) -> Bool {
        let missing = pool.blocks(for: count + tokens) - blocks.count
        guard missing > 0 else { return true }
        guard let more = pool.take(missing) else { return false }
        blocks += more
        return true
    }

    /// Gives every block back; the cache is then empty.
    public func release() {
        pool.give(blocks)
        blocks = []
        count = 0
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
