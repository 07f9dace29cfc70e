/// "1 worker", "2 workers": counts in log lines and messages read as English.
public func counted(_ n: Int, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}
