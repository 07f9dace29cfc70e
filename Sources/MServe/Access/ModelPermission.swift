/// Who may use a model, in HepAI's shape: `permission = "groups: all; users: alice, bob; owner: carol"`
/// in `[model.NAME]`.  A key may use the model if one of its groups is listed (or `all` is), or its
/// name is among the users or is the owner.
public struct ModelPermission: Sendable, Equatable {
    public var groups: [String] = []
    public var users: [String] = []
    public var owner: String?

    public init(groups: [String] = [], users: [String] = [], owner: String? = nil) {
        self.groups = groups
        self.users = users
        self.owner = owner
    }

    public init(parsing text: String) throws(ConfigError) {
        for part in text.split(separator: ";") {
            let trimmed = part.trimmingSpaces()
            if trimmed.isEmpty { continue }
            guard let colon = trimmed.firstIndex(of: ":") else {
                throw ConfigError("permission '\(text)': expected 'groups: ...; users: ...; owner: ...'")
            }
            let field = trimmed[..<colon].trimmingSpaces().lowercased()
            let names = trimmed[trimmed.index(after: colon)...].split(separator: ",").map { String($0.trimmingSpaces()) }.filter { !$0.isEmpty }
            switch field {
            case "groups", "group": groups += names
            case "users", "user": users += names
            case "owner":
                guard names.count == 1 else { throw ConfigError("permission '\(text)': owner takes one name") }
                owner = names[0]
            default:
                throw ConfigError("permission '\(text)': unknown field '\(field)' (groups, users, owner)")
            }
        }
    }

    public func allows(_ key: APIKey) -> Bool {
        groups.contains("all") || key.groups.contains(where: groups.contains) || users.contains(key.name) || owner == key.name
    }
}
