/// A yes-or-no setting as people write one, parsed the same way wherever it is given (a flag's
/// value, a config key, a model's option): a TOML boolean, or the text true/false, on/off, yes/no
/// or 1/0 (gunicorn's and systemd's spellings), any case.
public enum BooleanSetting {
    /// The value, or nil for anything else.
    public static func value(_ v: JSON) -> Bool? {
        switch v {
        case .bool(let b): return b
        case .int(1): return true
        case .int(0): return false
        case .string(let s):
            switch s.lowercased() {
            case "true", "on", "yes", "1": return true
            case "false", "off", "no", "0": return false
            default: return nil
            }
        default: return nil
        }
    }

    /// What a refusal says is expected.
    public static let expected = "true or false (or on/off, yes/no)"
}
