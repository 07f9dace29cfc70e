/// "Did you mean": the known name nearest to a misspelt one (flags, config keys, model options).
public enum Spelling {
    /// " (did you mean X?)" for a name close to one of `known`, else "".
    public static func suggestion(for name: String, among known: [String]) -> String {
        let scored = known.map { ($0, editDistance(name.lowercased(), $0)) }.min { $0.1 < $1.1 }
        guard let (best, d) = scored, d <= max(2, best.count / 4) else { return "" }
        return " (did you mean \(best)?)"
    }

    /// Levenshtein distance, over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = a[i - 1] == b[j - 1] ? previous : 1 + min(previous, row[j], row[j - 1])
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
}
