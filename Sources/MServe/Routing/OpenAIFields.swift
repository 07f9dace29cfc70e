/// The request fields OpenAI's generation endpoints hand to a generative model as they are,
/// declared once for chat, completions and Responses.  The model checks their values (a 400 that
/// names the field) and uses them; a new sampling field is an entry here and its reading in the
/// model (MServeSmolLM's ChatPlan for GGUF files).
enum OpenAIFields {
    /// How the next token is chosen: every endpoint.
    static let sampling = [
        "temperature", "top_p", "top_k", "seed", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "stop_token_ids"
    ]
    /// What the answer must look like (OpenAI's `response_format`, llama.cpp's `json_schema` and
    /// `grammar`) and the functions the model may call: chat and completions.
    static let constraints = ["response_format", "json_schema", "grammar", "tools", "tool_choice", "parallel_tool_calls"]

    /// Appends each of `keys` the body has (and is not null) to the model's input.
    static func pass(_ keys: [String], from body: JSON, into input: inout [(String, JSON)]) {
        for key in keys {
            if let v = body[key], v != .null { input.append((key, v)) }
        }
    }
}
