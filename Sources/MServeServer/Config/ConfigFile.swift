import MServe
import MServeSystem
import TOMLKit

/// The TOML config file (conf/mserve.toml documents every key): the setting table's keys at the top
/// level, and one `[model.NAME]` table per model with `device` and the model's own options.
public enum ConfigFile {
    public static func read(_ path: String) throws(ConfigError) -> String {
        do {
            return try FileReading.text(path)
        } catch {
            throw ConfigError("config file: \(error)")
        }
    }

    public static func load(text: String, path: String, into base: ServerSettings) throws(ConfigError) -> ServerSettings {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError("\(path):\(e.source.begin.line):\(e.source.begin.column): \(e.description)")
        } catch {
            throw ConfigError("\(path): \(error)")
        }
        var settings = base
        for (key, value) in table {
            if key == "model", let models = value.table {
                for (name, modelValue) in models {
                    guard let modelTable = modelValue.table else {
                        throw ConfigError("\(path): model.\(name) must be a table ([model.\(name)])")
                    }
                    settings.serving.modelSettings[name] = try modelSettings(modelTable, name: name, path: path)
                }
                continue
            }
            guard let setting = SettingTable.setting(forKey: key), key != "config" else {
                let keys = SettingTable.all.map(\.key).filter { $0 != "config" } + ["model"]
                throw ConfigError("\(path): unknown key '\(key)'\(Spelling.suggestion(for: key, among: keys))")
            }
            try setting.set(&settings, json(value), source: "\(path): \(key)", fromCommandLine: false)
        }
        return settings
    }

    private static func modelSettings(_ t: TOMLTable, name: String, path: String) throws(ConfigError) -> ModelSettings {
        var m = ModelSettings()
        for (key, value) in t {
            if key == "device" {
                guard let d = value.string, !d.isEmpty else {
                    throw ConfigError("\(path): model.\(name).device: expected a non-empty string")
                }
                m.device = d
            } else if key == "permission" {
                guard let text = value.string else {
                    throw ConfigError("\(path): model.\(name).permission: expected a string such as \"groups: all; users: alice; owner: carol\"")
                }
                do { m.permission = try ModelPermission(parsing: text) } catch {
                    throw ConfigError("\(path): model.\(name).\(error.message)")
                }
            } else if SettingTable.perModelKeys.contains(key), let setting = SettingTable.setting(forKey: key) {
                try setting.set(&m, json(value), source: "\(path): model.\(name).\(key)")
            } else {
                m.options[key] = json(value)
            }
        }
        return m
    }

    /// TOML values as JSON, the form settings and model options take.
    static func json(_ v: TOMLValueConvertible) -> JSON {
        if let b = v.bool { return .bool(b) }
        if let i = v.int { return .int(Int64(i)) }
        if let d = v.double { return .double(d) }
        if let s = v.string { return .string(s) }
        if let a = v.array { return .array(a.map { json($0) }) }
        if let t = v.table { return .object(t.map { ($0.0, json($0.1)) }.sorted { $0.0 < $1.0 }) }
        return .string(v.debugDescription)
    }
}
