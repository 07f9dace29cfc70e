import MServeJSON
import MServeSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A safetensors file (8-byte little-endian header length, a JSON header naming each tensor's dtype,
/// shape and byte range, then the data), mapped read-only: the weights stay in the page cache,
/// shared by every process that maps the file, and are never copied unless a caller asks.
public final class SafeTensors: @unchecked Sendable {
    public struct Info: Equatable, Sendable {
        public let dtype: String
        public let shape: [Int]
        /// Byte range within the data section.
        public let range: Range<Int>
    }

    public let path: String
    public let tensors: [String: Info]
    private let file: MappedFile
    private let dataStart: Int

    public init(path: String) throws(WeightsError) {
        self.path = path
        do { file = try MappedFile(path: path) } catch { throw WeightsError(path, error.message) }
        let size = file.bytes.count
        guard size >= 8 else { throw WeightsError(path, "too short (\(size) bytes) to be a safetensors file") }
        (tensors, dataStart) = try SafeTensors.parseHeader(file.bytes, path: path)
    }

    /// The whole file, for hashing.
    public var bytes: UnsafeRawBufferPointer { file.bytes }

    /// Parses and checks the header: every tensor's byte range inside the file and of the size its
    /// dtype and shape imply.  Returns the tensors and where the data section starts.
    static func parseHeader(_ file: UnsafeRawBufferPointer, path: String) throws(WeightsError) -> ([String: Info], Int) {
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(file[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(file.count - 8), n <= 100_000_000 else {
            throw WeightsError(path, "header length \(n) is beyond the file's \(file.count) bytes: not a safetensors file, or truncated")
        }
        let dataStart = 8 + Int(n)
        let header: JSON
        do { header = try JSONParser.parse(Array(file[8..<dataStart])) } catch {
            throw WeightsError(path, "header is not JSON: \(error)")
        }
        guard case .object(let entries) = header else { throw WeightsError(path, "header is not a JSON object") }
        var tensors: [String: Info] = [:]
        let dataSize = file.count - dataStart
        for (name, value) in entries where name != "__metadata__" {
            guard let dtype = value["dtype"]?.stringValue,
                case .array(let shapeJSON)? = value["shape"], case .array(let offsets)? = value["data_offsets"],
                offsets.count == 2, case .int(let begin) = offsets[0], case .int(let end) = offsets[1]
            else {
                throw WeightsError(path, "tensor \(name): dtype, shape or data_offsets missing or malformed")
            }
            var shape: [Int] = []
            for d in shapeJSON {
                guard case .int(let v) = d, v >= 0 else { throw WeightsError(path, "tensor \(name): bad shape") }
                shape.append(Int(v))
            }
            guard 0 <= begin, begin <= end, end <= Int64(dataSize) else {
                throw WeightsError(
                    path, "tensor \(name): bytes \(begin)..<\(end) outside the data (\(dataSize) bytes); the file is truncated or corrupt")
            }
            if let width = elementSize[dtype] {
                let count = shape.reduce(1, *)
                guard Int64(count * width) == end - begin else {
                    throw WeightsError(path, "tensor \(name): \(end - begin) bytes for shape \(shape) of \(dtype)")
                }
            }
            tensors[name] = Info(dtype: dtype, shape: shape, range: Int(begin)..<Int(end))
        }
        return (tensors, dataStart)
    }

    private static let elementSize = ["F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    /// A float32 tensor of the expected shape, read in place (copied only if misaligned).
    public func floats(_ name: String, shape: [Int]) throws(WeightsError) -> UnsafeBufferPointer<Float> {
        guard let info = tensors[name] else { throw WeightsError(path, "tensor \(name) is missing") }
        guard info.dtype == "F32" else { throw WeightsError(path, "tensor \(name) is \(info.dtype), expected F32") }
        guard info.shape == shape else { throw WeightsError(path, "tensor \(name) has shape \(info.shape), expected \(shape)") }
        guard let base = file.bytes.baseAddress else { throw WeightsError(path, "is empty") }
        let start = base + dataStart + info.range.lowerBound
        let count = info.range.count / 4
        if Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
            return UnsafeBufferPointer(start: start.assumingMemoryBound(to: Float.self), count: count)
        }
        let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        UnsafeMutableRawBufferPointer(copy).copyMemory(from: UnsafeRawBufferPointer(start: start, count: info.range.count))
        return UnsafeBufferPointer(copy)  // lives as long as the process: weights are never unloaded
    }
}

/// Model files that are missing or wrong: the message names the file and what is wrong with it.
public struct WeightsError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let problem: String
    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }
    public var description: String { "\(path): \(problem)" }
}
