/// Carries a value into a @Sendable closure where the code, not the compiler, keeps it safe: a
/// loop-thread event used only through libevent's thread-safe calls, or a model instance handed to
/// its own model threads.
package struct UncheckedBox<T>: @unchecked Sendable {
    package let value: T
    package init(_ value: T) { self.value = value }
}
