import CSystemShim

/// The process's heap as the system sees it.
public enum Memory {
    /// Gives the heap's free pages back to the system.  glibc keeps what a large answer freed
    /// (a 10 MB stream left a worker at 400-580 MB); called after such an answer, not per request
    /// (it walks every arena).
    public static func returnFreePages() { _ = mserve_malloc_trim() }
}
