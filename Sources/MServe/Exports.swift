// Handlers see HTTP requests, methods and media types: the HTTP layer comes with the library.
@_exported import MServeHTTP
// JSON is its own module (MiniLM reads safetensors headers with it too); users of MServe get it
// with `import MServe` alone.
@_exported import MServeJSON
// Loggers, log files and the event loop appear in the library's API (a model's context, tests).
@_exported import MServeSystem
