/// An append-only table of names in memory shared by the master and its workers: the scoreboard's
/// model names and the API keys' names.  The master adds (before forking the workers that read
/// them); an index, once given, keeps its name, so counters stay with it across reloads.
struct SharedNames {
    static let nameBytes = 64
    /// The number of names, then `capacity` slots of `nameBytes` each.
    let count: UnsafeMutablePointer<UInt64>
    let slots: UnsafeMutableRawPointer
    let capacity: Int

    static func words(capacity: Int) -> Int { capacity * nameBytes / 8 }

    var names: [String] {
        (0..<Int(min(count.pointee, UInt64(capacity)))).map { i in
            let p = UnsafeRawPointer(slots).advanced(by: i * SharedNames.nameBytes).assumingMemoryBound(to: UInt8.self)
            return String(
                decoding: UnsafeBufferPointer(start: p, count: (0..<SharedNames.nameBytes).first { p[$0] == 0 } ?? SharedNames.nameBytes),
                as: UTF8.self)
        }
    }

    /// The index of `name` among `known` (the table's names, read once by a caller adding many),
    /// adding it if new; nil when the table is full.
    func index(adding name: String, known: inout [String]) -> Int? {
        if let i = known.firstIndex(of: name) { return i }
        guard known.count < capacity else { return nil }
        let slot = slots.advanced(by: known.count * SharedNames.nameBytes)
        let bytes = Array(name.utf8.prefix(SharedNames.nameBytes - 1))
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: SharedNames.nameBytes)
        slot.copyMemory(from: bytes, byteCount: bytes.count)
        known.append(name)
        count.pointee = UInt64(known.count)
        return known.count - 1
    }
}
