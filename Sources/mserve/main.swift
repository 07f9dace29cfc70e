import MServe
import MServeServer
import MServeMiniLM
#if canImport(Glibc)
import Glibc
#endif

// The built-in models, and minilm, whose target links OpenBLAS (a model package built on MServe alone does not).
var models = ModelRegistry.builtin
models.registerMiniLM()
exit(MServeMain.run(models: models))
