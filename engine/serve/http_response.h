// HTTP/1.1 response bytes for `latent serve`: whole responses (every one closes the
// connection), OpenAI-shaped JSON errors, chunked Server-Sent Events. Formatting only.
//
// Thread safety: free functions, no state.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace latent::serve {

// JSON text, invalid UTF-8 replaced (a model may stop inside a character).
std::string dump(const nlohmann::json& j);
std::string dump(const nlohmann::ordered_json& j);

std::string http_response(int status, const std::string& body,
                          const std::string& type = "application/json",
                          const std::string& extra_headers = "");
// {"error": {"message", "type", "code"}} with the status.
std::string error_response(int status, const std::string& message,
                           const std::string& type = "invalid_request_error",
                           const std::string& extra_headers = "");
// The head of a chunked text/event-stream response.
std::string sse_head(const std::string& extra_headers = "");
// One chunk of a chunked body; "data: <json>\n\n" as one chunk; the terminating chunk.
std::string http_chunk(const std::string& data);
std::string sse_event(const nlohmann::json& j);
std::string sse_done();

}  // namespace latent::serve
