// libFuzzer target: arbitrary bytes, split into chunks chosen by the input, through the
// LSP MessageReader into a JSON-RPC Endpoint (0 worker threads) with a few typed handlers.
// Findings: a crash, ASan/UBSan report, or output that is not one valid JSON-RPC message.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lsp/jsonrpc.h"
#include "lsp/protocol.h"
#include "lsp/transport.h"

using namespace latent::lsp;

namespace {

// Every message we write must be a JSON object speaking JSON-RPC 2.0; anything else would
// break the client, so it is a finding.
void check_output(const std::string& body) {
    json m = json::parse(body, nullptr, false);
    if (m.is_discarded() || !m.is_object() || m.value("jsonrpc", "") != "2.0") std::abort();
}

void register_handlers(Endpoint& ep) {
    ep.on_request<InitializeParams, InitializeResult>(
        "initialize", [&ep](const InitializeParams&, RequestContext&) -> Result<InitializeResult> {
            ep.open_gate();
            InitializeResult r;
            r.capabilities.inlineCompletionProvider = true;
            r.capabilities.textDocumentSync =
                TextDocumentSyncOptions{true, TextDocumentSyncKind::Incremental};
            return r;
        });
    ep.on_request<InlineCompletionParams, InlineCompletionList>(
        "textDocument/inlineCompletion",
        [](const InlineCompletionParams& p, RequestContext& ctx) -> Result<InlineCompletionList> {
            if (ctx.work_done_token()) {
                WorkDoneProgress progress(ctx.endpoint(), *ctx.work_done_token());
                progress.begin({"Completing", true, std::nullopt, 0});
                progress.report({std::nullopt, p.textDocument.uri, 50});
            }
            ctx.send_partial_result(json::array());
            if (p.position.line == 7)
                return ResponseError{error_code::kContentModified, "changed", {}};
            return InlineCompletionList{
                {{"x", std::nullopt, Range{p.position, p.position}, std::nullopt}}};
        });
    ep.on_request("echo",
                  [](const json& params, RequestContext&) -> Result<json> { return params; });
    ep.on_request("apply", [](const json& params, RequestContext& ctx) -> Result<json> {
        // A server->client request whose response may arrive later in the input.
        ctx.endpoint().send_request("workspace/applyEdit", params.value("edit", json::object()),
                                    [](Result<json> r) {
                                        if (r) (void)r.value().dump();
                                    });
        return json(nullptr);
    });
    ep.on_notification<DidOpenTextDocumentParams>("textDocument/didOpen",
                                                  [](const DidOpenTextDocumentParams&) {});
    ep.on_notification<DidChangeTextDocumentParams>("textDocument/didChange",
                                                    [](const DidChangeTextDocumentParams&) {});
    ep.on_notification<DidCloseTextDocumentParams>("textDocument/didClose",
                                                   [](const DidCloseTextDocumentParams&) {});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // The first two bytes seed the chunk sizes; the rest is the byte stream.
    uint32_t state = size >= 2 ? (uint32_t{data[0]} << 8 | data[1]) + 1 : 1;
    std::string_view stream(reinterpret_cast<const char*>(data), size);
    stream.remove_prefix(std::min<size_t>(2, size));

    Endpoint::Options options;
    options.worker_threads = 0;
    options.require_initialize = (state & 1) != 0;
    Endpoint ep([](const std::string& body) { check_output(body); }, options);
    register_handlers(ep);

    ReaderLimits limits;
    limits.max_body = 1u << 20;  // keep each run fast; the cap logic is the same
    limits.max_header_line = 256;
    MessageReader reader(limits);
    while (!stream.empty() && !reader.fatal()) {
        state = state * 1103515245u + 12345u;  // LCG: any split the input asks for
        const size_t chunk = 1 + (state >> 16) % 64;
        reader.feed(stream.substr(0, chunk));
        stream.remove_prefix(std::min(chunk, stream.size()));
        while (auto r = reader.next()) {
            if (r->kind == ReadResult::Kind::kMessage)
                ep.receive(r->body);
            else
                ep.report_framing_error(r->error);
        }
    }
    ep.expire_requests(std::chrono::steady_clock::now() + std::chrono::hours(1));
    if (ep.pending_client_requests() != 0) std::abort();
    return 0;
}
