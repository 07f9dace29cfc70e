/// Carries a value into a @Sendable closure where the code, not the compiler, keeps it safe: a
/// loop-thread event used only through libevent's thread-safe calls, or a model instance handed to
/// its own model threads.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
