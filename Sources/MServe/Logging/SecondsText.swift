extension String {
    /// "%.3f" without Foundation.
    package init(format3 x: Double) {
        let ms = Int((x * 1000).rounded())
        let frac = String(ms % 1000)
        self = "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}
