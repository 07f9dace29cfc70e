import MServeSystem

#if canImport(Glibc)
    import Glibc
#endif

/// Why a GGUF file cannot be used: its path and what is wrong, in words a user can act on.
public struct GGUFError: Error, CustomStringConvertible, Equatable {
    public let description: String
    /// What is wrong, without the path (for a client, who is not told where the server's files are).
    public let reason: String
    init(_ path: String, _ what: String) {
        description = "\(path): \(what)"
        reason = what
    }
}

/// A metadata value of a GGUF file.
public enum GGUFValue: Equatable, Sendable {
    case uint(UInt64), int(Int64), float(Double), bool(Bool), string(String), array([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .uint(let u): return u <= UInt64(Int.max) ? Int(u) : nil
        case .int(let i): return Int(i)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let d): return d
        case .uint, .int: return intValue.map(Double.init)
        default: return nil
        }
    }
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var arrayValue: [GGUFValue]? { if case .array(let a) = self { a } else { nil } }
}

/// A GGUF file (llama.cpp's format, version 2 or 3), mapped read-only: the metadata (model
/// hyper-parameters, tokenizer, chat template) parsed, the tensors located, their data left in the
/// page cache, shared by every process that maps the file and never copied.
///
/// Layout: "GGUF", version, tensor count, metadata count; the metadata (key, type, value); the
/// tensor table (name, dimensions, type, offset); then, aligned to `general.alignment` (32 by
/// default), the data, each tensor at its offset from there.
public final class GGUFFile: @unchecked Sendable {
    public struct Tensor: Equatable, Sendable {
        public let name: String
        /// Dimensions, innermost first: `shape[0]` is a row's length.
        public let shape: [Int]
        public let type: GGMLType
        /// From the start of the file.
        public let offset: Int
        public var elementCount: Int { shape.reduce(1, *) }
        public var rows: Int { shape.dropFirst().reduce(1, *) }
        public var rowBytes: Int { type.bytes(forElements: shape.first ?? 0) }
        public var byteCount: Int { rowBytes * rows }
    }

    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// In the file's order, and by name.
    public let tensors: [Tensor]
    public let tensorsByName: [String: Tensor]
    public let alignment: Int
    private let file: MappedFile

    public init(path: String) throws(GGUFError) {
        self.path = path
        do { file = try MappedFile(path: path) } catch { throw GGUFError(path, error.message) }
        let size = file.bytes.count
        guard size >= 24 else { throw GGUFError(path, "too short (\(size) bytes) to be a GGUF file") }
        var r = GGUFReader(file.bytes, path: path)
        (version, metadata, tensors, alignment) = try r.parse()
        var byName: [String: Tensor] = [:]
        for t in tensors { byName[t.name] = t }
        tensorsByName = byName
    }

    /// The whole file, for hashing.
    public var bytes: UnsafeRawBufferPointer { file.bytes }

    /// A tensor's bytes, where the file is mapped.
    public func data(_ t: Tensor) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[t.offset..<(t.offset + t.byteCount)])
    }

    public func tensor(_ name: String) throws(GGUFError) -> Tensor {
        guard let t = tensorsByName[name] else { throw GGUFError(path, "no tensor named \(name)") }
        return t
    }

    /// Rows `rows` of a tensor as float32 (each block dequantized).
    public func dequantize(_ t: Tensor, rows: Range<Int>) -> [Float] {
        let n = t.shape.first ?? 0
        var out = [Float](repeating: 0, count: n * rows.count)
        let src = data(t)
        out.withUnsafeMutableBufferPointer { dst in
            for (k, row) in rows.enumerated() {
                let from = UnsafeRawBufferPointer(rebasing: src[(row * t.rowBytes)..<((row + 1) * t.rowBytes)])
                t.type.dequantize(from, into: UnsafeMutableBufferPointer(rebasing: dst[(k * n)..<((k + 1) * n)]))
            }
        }
        return out
    }

    /// The model's architecture (`general.architecture`); one not among `supported` is refused.
    @discardableResult
    public func requireArchitecture(_ supported: [String]) throws(GGUFError) -> String {
        let found = metadata["general.architecture"]?.stringValue ?? "none"
        guard supported.contains(found) else {
            throw GGUFError(path, "architecture \(found) is not supported; supported: \(supported.joined(separator: ", "))")
        }
        return found
    }

    /// `key` with a leading "{arch}." made the architecture's prefix.
    func resolved(_ key: String) -> String {
        key.hasPrefix("{arch}.") ? (metadata["general.architecture"]?.stringValue ?? "") + key.dropFirst(6) : key
    }

    /// A metadata number that must be there (`key` may start with "{arch}.", the architecture).
    public func int(_ key: String) throws(GGUFError) -> Int {
        let full = resolved(key)
        guard let v = metadata[full]?.intValue else { throw GGUFError(path, "metadata \(full) is missing or not an integer") }
        return v
    }

    /// A metadata number that may be missing (then `fallback`).
    public func double(_ key: String, default fallback: Double) -> Double {
        metadata[resolved(key)]?.doubleValue ?? fallback
    }
}

/// Reads the header in order, every length and offset checked against the file's size.
struct GGUFReader {
    let file: UnsafeRawBufferPointer
    let path: String
    var at = 0

    init(_ file: UnsafeRawBufferPointer, path: String) {
        self.file = file
        self.path = path
    }

    mutating func parse() throws(GGUFError) -> (UInt32, [String: GGUFValue], [GGUFFile.Tensor], Int) {
        guard try u32() == 0x4655_4747 else { throw GGUFError(path, "not a GGUF file (it does not start with \"GGUF\")") }
        let version = try u32()
        guard version == 2 || version == 3 else { throw GGUFError(path, "GGUF version \(version) is not supported (2 or 3)") }
        let tensorCount = try count(try u64(), "tensors")
        let metadataCount = try count(try u64(), "metadata entries")
        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<metadataCount {
            let key = try string()
            metadata[key] = try value(type: try u32(), depth: 0)
        }
        let alignment = metadata["general.alignment"]?.intValue ?? 32
        guard alignment > 0, alignment & (alignment - 1) == 0 else { throw GGUFError(path, "general.alignment \(alignment) is not a power of two") }
        var infos: [(String, [Int], GGMLType, Int)] = []
        for _ in 0..<tensorCount {
            let name = try string()
            let dims = try u32()
            guard (1...4).contains(dims) else { throw GGUFError(path, "tensor \(name) has \(dims) dimensions") }
            var shape: [Int] = []
            for _ in 0..<dims { shape.append(try count(try u64(), "elements in a dimension of \(name)")) }
            let rawType = try u32()
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError(
                    path,
                    "tensor \(name) has type \(GGMLType.name(rawType)), which mserve does not read (\(GGMLType.allCases.map(\.description).joined(separator: ", ")))"
                )
            }
            guard shape[0] % type.blockSize == 0 else { throw GGUFError(path, "tensor \(name): rows of \(shape[0]) are not whole \(type) blocks") }
            infos.append((name, shape, type, try count(try u64(), "the offset of \(name)")))
        }
        let dataStart = (at + alignment - 1) / alignment * alignment
        var tensors: [GGUFFile.Tensor] = []
        for (name, shape, type, offset) in infos {
            let t = GGUFFile.Tensor(name: name, shape: shape, type: type, offset: dataStart + offset)
            guard offset % alignment == 0 else { throw GGUFError(path, "tensor \(name) is not aligned to \(alignment) bytes") }
            guard t.offset <= file.count, t.byteCount <= file.count - t.offset else {
                throw GGUFError(path, "tensor \(name) runs past the end of the file (truncated?)")
            }
            tensors.append(t)
        }
        return (version, metadata, tensors, alignment)
    }

    private mutating func bytes(_ n: Int) throws(GGUFError) -> UnsafeRawBufferPointer {
        guard n >= 0, n <= file.count - at else { throw GGUFError(path, "ends inside its header (truncated?)") }
        defer { at += n }
        return UnsafeRawBufferPointer(rebasing: file[at..<(at + n)])
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws(GGUFError) -> T {
        let b = try bytes(MemoryLayout<T>.size)
        return T(littleEndian: b.loadUnaligned(as: T.self))
    }

    mutating func u32() throws(GGUFError) -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws(GGUFError) -> UInt64 { try load(UInt64.self) }

    /// A count that must fit in what is left of the file (one byte per item at least).
    private func count(_ n: UInt64, _ what: String) throws(GGUFError) -> Int {
        guard n <= UInt64(file.count) else { throw GGUFError(path, "\(n) \(what) cannot fit in a file of \(file.count) bytes") }
        return Int(n)
    }

    mutating func string() throws(GGUFError) -> String {
        let n = try count(try u64(), "bytes of a string")
        return String(decoding: try bytes(n), as: UTF8.self)
    }

    mutating func value(type: UInt32, depth: Int) throws(GGUFError) -> GGUFValue {
        switch type {
        case 0: return .uint(UInt64(try load(UInt8.self)))
        case 1: return .int(Int64(try load(Int8.self)))
        case 2: return .uint(UInt64(try load(UInt16.self)))
        case 3: return .int(Int64(try load(Int16.self)))
        case 4: return .uint(UInt64(try load(UInt32.self)))
        case 5: return .int(Int64(try load(Int32.self)))
        case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
        case 7: return .bool(try load(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            guard depth < 4 else { throw GGUFError(path, "arrays nested too deeply") }
            let itemType = try u32()
            let n = try count(try u64(), "array items")
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(type: itemType, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint(try load(UInt64.self))
        case 11: return .int(try load(Int64.self))
        case 12: return .float(Double(bitPattern: try load(UInt64.self)))
        default: throw GGUFError(path, "metadata value of unknown type \(type)")
        }
    }
}
