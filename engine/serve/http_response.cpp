// HTTP response bytes (see http_response.h).
#include "engine/serve/http_response.h"

#include <cstdio>

namespace latent::serve {

namespace {

const char* reason_phrase(int code) {
    switch (code) {
        case 100:
            return "Continue";
        case 200:
            return "OK";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 413:
            return "Payload Too Large";
        case 415:
            return "Unsupported Media Type";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Error";
    }
}

}  // namespace

std::string dump(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string dump(const nlohmann::ordered_json& j) {
    return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string http_response(int status, const std::string& body, const std::string& type,
                          const std::string& extra_headers) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) +
           "\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n" + extra_headers + "\r\n" + body;
}

std::string error_response(int status, const std::string& message, const std::string& type,
                           const std::string& extra_headers) {
    nlohmann::json j = {{"error", {{"message", message}, {"type", type}, {"code", status}}}};
    return http_response(status, dump(j), "application/json", extra_headers);
}

std::string sse_head(const std::string& extra_headers) {
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
           "Transfer-Encoding: chunked\r\nConnection: close\r\n" +
           extra_headers + "\r\n";
}

std::string http_chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return size + data + "\r\n";
}

std::string sse_event(const nlohmann::json& j) { return http_chunk("data: " + dump(j) + "\n\n"); }

std::string sse_done() { return http_chunk("data: [DONE]\n\n") + "0\r\n\r\n"; }

}  // namespace latent::serve
