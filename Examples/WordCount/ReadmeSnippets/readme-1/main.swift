// Generated from a ```swift block of the docs (README.md, docs/) by scripts/readme-snippets; edit the docs, not this.
import MServe
import MServeServer
import WordCountModel
var models = ModelRegistry.builtin
models.register(WordCount.self, as: "wordcount", summary: "counts the words of a text")
MServeMain.serve(models: models)
