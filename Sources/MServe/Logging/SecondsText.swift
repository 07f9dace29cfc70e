extension String {
    /// "%.3f" without Foundation.
    package init(format3 x: Double) {
        let ms = Int((x * 1000).rounded())
        let frac = String(ms % 1000)
        self = "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}

extension String {
    /// Seconds as a setting is written: "5", "0.5".
    package init(seconds x: Double) {
        self = x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
}
