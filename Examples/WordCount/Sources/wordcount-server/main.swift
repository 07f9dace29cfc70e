import MServe
import MServeServer
import WordCountModel
#if canImport(Glibc)
import Glibc
#endif

var models = ModelRegistry.builtin
models.register(WordCount.self, as: "wordcount", summary: "counts the words of a text")
exit(MServeMain.run(models: models))
