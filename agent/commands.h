// The `latent` subcommands. Each registers itself on the CLI11 app and, when chosen,
// runs and stores its exit status: 0 success, 1 usage error, 2 bad input (one clear
// line on stderr naming the file and the problem). Nothing here writes to stdout
// except a command's own output.
#pragma once

#include <CLI/CLI.hpp>

namespace latent::agent {

// Subcommands of the engine: make-model, generate, tokenize.
void register_model_commands(CLI::App& app, int& exit_code);
// `latent bench engine|tokenizer`.
void register_bench_commands(CLI::App& app, int& exit_code);
// `latent index|search|symbols` and `latent bench index`.
void register_index_commands(CLI::App& app, int& exit_code);
// `latent lsp`: the language server (cli_lsp.cpp).
void register_lsp_command(CLI::App& app, int& exit_code);
// Clients of `latent lsp`, one file each: `latent complete` (cli_complete.cpp), `latent
// demo` (cli_demo.cpp), `latent bench lsp` (cli_bench_lsp.cpp), `latent bench replay`
// (cli_bench_replay.cpp).
void register_complete_command(CLI::App& app, int& exit_code);
void register_demo_command(CLI::App& app, int& exit_code);
void register_bench_lsp_command(CLI::App& app, int& exit_code);
void register_bench_replay_command(CLI::App& app, int& exit_code);
// `latent bench lifecycle`: status latency while a folder is removed mid-index, memory
// after a storm of backend setting changes (cli_bench_lifecycle.cpp).
void register_bench_lifecycle_command(CLI::App& app, int& exit_code);
// `latent bench json-mask`: the cost of a JSON-output logit mask (cli_bench_json_mask.cpp).
void register_bench_json_mask_command(CLI::App& app, int& exit_code);
// `latent bench soak-serve`: `latent serve` under a long mixed load (cli_bench_soak.cpp);
// `latent bench json-decode`: decode speed with and without a JSON-schema constraint
// (cli_bench_json_decode.cpp).
void register_bench_soak_command(CLI::App& app, int& exit_code);
void register_bench_json_decode_command(CLI::App& app, int& exit_code);
// `latent bench chat-cache`: the prefix cache's share of each chat turn's prompt
// (cli_bench_chat_cache.cpp).
void register_bench_chat_cache_command(CLI::App& app, int& exit_code);
// `latent bench next-edit`: recall, precision and latency of the index-driven next edits
// on real code (cli_bench_next_edit.cpp).
void register_bench_next_edit_command(CLI::App& app, int& exit_code);
// `latent bench context`: recall of the definitions held-out code needs in the completion
// context, Latent's and other assistants' (cli_bench_context.cpp).
void register_bench_context_command(CLI::App& app, int& exit_code);
// `latent serve` (OpenAI-compatible HTTP) and `latent bench batch`.
void register_serve_commands(CLI::App& app, int& exit_code);

// The `latent bench` subcommand, made (requiring one benchmark) by whichever file asks
// first: registration order does not matter.
CLI::App* bench_command(CLI::App& app);

// Prints "latent: error: <message>" to stderr and returns 2.
int fail(const std::string& message);

}  // namespace latent::agent
