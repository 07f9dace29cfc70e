import MServe
import MServeMiniLM
import MServePython
import MServeServer
import MServeSmolLM

// The built-in models, and minilm, whose target links OpenBLAS (a model package built on MServe alone does not).
var models = ModelRegistry.builtin
models.registerMiniLM()
models.registerSmolLM()
models.registerPython()
MServeMain.serve(models: models)
