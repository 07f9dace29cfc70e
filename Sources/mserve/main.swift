import MServe
#if canImport(Glibc)
import Glibc
#endif

exit(MServeMain.run())
