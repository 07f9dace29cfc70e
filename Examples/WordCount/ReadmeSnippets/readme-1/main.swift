// Generated from a ```swift block of README.md by scripts/readme-snippets; edit the README, not this.
import MServe
import MServeServer
import WordCountModel
var models = ModelRegistry.builtin
models.register(WordCount.self, as: "wordcount", summary: "counts the words of a text")
MServeMain.serve(models: models)
