/// What a GGUF file holds, as a user recognizes it (llama.cpp's server says as much in its
/// /v1/models `meta`): the architecture, the quantization the file was made with, the parameters.
public struct GGUFSummary: Equatable, Sendable {
    public let name: String?
    public let architecture: String
    /// llama.cpp's name for `general.file_type` ("Q4_K_M"), else the type holding most bytes.
    public let quantization: String
    public let parameters: Int
    public let bytes: Int

    public init(_ f: GGUFFile) {
        name = f.metadata["general.name"]?.stringValue
        architecture = f.metadata["general.architecture"]?.stringValue ?? "unknown"
        parameters = f.tensors.reduce(0) { $0 + $1.elementCount }
        bytes = f.bytes.count
        var byType: [GGMLType: Int] = [:]
        for t in f.tensors { byType[t.type, default: 0] += t.byteCount }
        let dominant = byType.max { $0.value < $1.value }?.key.description ?? "unknown"
        quantization = f.metadata["general.file_type"]?.intValue.flatMap { GGUFSummary.fileTypes[$0] } ?? dominant
    }

    /// llama.cpp's `llama_ftype` numbers (llama.h), for the names users know.
    static let fileTypes: [Int: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M",
        13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16"
    ]

    /// "1.2 B", "135 M" parameters.
    public var parameterText: String {
        let p = Double(parameters)
        if p >= 1e9 { return String((p / 1e8).rounded() / 10) + " B" }
        return String(Int((p / 1e6).rounded())) + " M"
    }
}
