/// Media types as Content-Type and a model's accepted types name them.
public enum MediaType {
    /// application/json and the structured "+json" types (application/vnd.api+json).
    public static func isJSON(_ mediaType: String) -> Bool {
        mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }

    /// "image/png" matches "image/png", "image/*" and "*/*"; any JSON type matches any other.
    public static func matches(_ media: String, pattern: String) -> Bool {
        if pattern == "*/*" || pattern == media { return true }
        if pattern.hasSuffix("/*") { return media.hasPrefix(pattern.dropLast()) }
        return isJSON(pattern) && isJSON(media)
    }
}
