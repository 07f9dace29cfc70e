#if canImport(Glibc)
    import Glibc
#endif

/// libm's natural logarithm, for layers above this one that do not import the C library
/// (`mserve bench`'s Poisson arrivals).
public func naturalLogarithm(_ x: Double) -> Double { log(x) }
