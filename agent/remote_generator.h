// RemoteGenerator: any OpenAI-compatible server over HTTP or HTTPS (Boost.Beast; OpenSSL
// with certificate and host name verification) — FIM through <base>/completions with
// `suffix` (`latent serve`, the DeepSeek API's /beta, SGLang started with
// --completion-template), through <base>/completions with the FIM template as a raw prompt
// (vLLM refuses `suffix`), or through llama.cpp server's /infill (it refuses `suffix` on
// /v1/completions); chat through <base>/chat/completions with tools passed through and
// tool calls parsed; all streamed (SSE). Not a general HTTP client.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/generator.h"

namespace latent::agent {

struct RemoteOptions {
    // http(s)://host[:port][/base]. The base path defaults to /v1; endpoints are
    // <base>/completions and <base>/chat/completions (https://api.deepseek.com/beta works).
    std::string url;
    std::string model;    // the "model" field of requests (may be empty for one-model servers)
    std::string api_key;  // sent as "Authorization: Bearer ..."; never logged
    // How FIM requests go: "completions" (<base>/completions with suffix), "raw"
    // (<base>/completions with fim_template rendered as the prompt and no suffix: any
    // completion server whose tokenizer turns the markers' spelling into the special
    // tokens, as vLLM's and llama.cpp's do), "infill" (llama.cpp's server: /infill with
    // input_prefix/input_suffix), "chat" (a chat request asking for the code at <CURSOR>,
    // for servers with none of these).
    std::string fim_api = "completions";
    // The model family's FIM markers for "raw". Default: DeepSeek's.
    FimTemplate fim_template;
    int connect_timeout_ms = 5000;
    // Time allowed for the whole request (first token and streaming). Default 60 s.
    int request_timeout_ms = 60000;
    // Retries after a connection failure (nothing was sent), with exponential backoff
    // from backoff_ms. Default 2 retries from 200 ms.
    int retries = 2;
    int backoff_ms = 200;
    std::function<void(const std::string&)> log;
};

// Thread safety: calls may come from any thread; each opens its own connection.
class RemoteGenerator : public Generator {
public:
    // Errors: a URL that is not http(s)://host...
    static engine::Expected<std::unique_ptr<RemoteGenerator>> create(RemoteOptions options);
    ~RemoteGenerator() override;

    std::string describe() const override;
    engine::Expected<GenerateResult> fim(const FimPrompt& prompt,
                                         const GenerateOptions& options) override;
    engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>& messages,
                                          const GenerateOptions& options) override;
    // The server is asked with tools; one that refuses them fails the call (agent mode
    // then asks it without).
    bool supports_tools() const override { return true; }
    nlohmann::json stats() const override;

    struct Url {
        bool tls = false;
        std::string host, port, base;
    };
    static engine::Expected<Url> parse_url(const std::string& url);

private:
    explicit RemoteGenerator(RemoteOptions options, Url url);
    // POSTs `body` to `path` (absolute: the base is already in it), streaming; on_event gets each
    // SSE data payload (or the whole body of a non-streamed answer). Returns an error with a
    // user-facing message.
    engine::Status post(const std::string& path, const std::string& body,
                        const GenerateOptions& options,
                        const std::function<void(const std::string&)>& on_event);
    engine::Expected<GenerateResult> stream(const std::string& path, nlohmann::json body,
                                            const GenerateOptions& options, bool chat);

    RemoteOptions options_;
    Url url_;
    struct Tls;
    std::unique_ptr<Tls> tls_;
};

// A user-facing sentence for an HTTP error status (401, 403, 404, 429, 5xx, ...).
std::string http_error_message(int status, const std::string& body);

}  // namespace latent::agent
