/// Media types as Content-Type and a model's accepted types name them.
public enum MediaType {
    /// application/json and the structured "+json" types (application/vnd.api+json).
    public static func isJSON(_ mediaType: String) -> Bool {
        mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }

    /// Whether an Accept header names `type` itself with a non-zero q (a browser's text/html);
    /// wildcards do not count, so that `*/*` (curl, libraries) keeps the JSON answer.
    public static func accepts(_ accept: String?, _ type: String) -> Bool {
        guard let accept else { return false }
        for item in accept.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingSpaces().lowercased() }
            guard parts.first == type else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
        return false
    }

    /// "image/png" matches "image/png", "image/*" and "*/*"; any JSON type matches any other.
    public static func matches(_ media: String, pattern: String) -> Bool {
        if pattern == "*/*" || pattern == media { return true }
        if pattern.hasSuffix("/*") { return media.hasPrefix(pattern.dropLast()) }
        return isJSON(pattern) && isJSON(media)
    }
}
