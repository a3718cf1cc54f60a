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
// `latent index|search|symbols` and `latent bench index` (after register_bench_commands).
void register_index_commands(CLI::App& app, int& exit_code);

// `latent lsp` (the language server), `latent complete`, `latent demo`, `latent bench lsp`.
void register_lsp_commands(CLI::App& app, int& exit_code);
// `latent serve` (OpenAI-compatible HTTP) and `latent bench batch` (after
// register_bench_commands).
void register_serve_commands(CLI::App& app, int& exit_code);

// The `latent bench` subcommand, made on first use (each file adds its benchmarks to it).
CLI::App* bench_command(CLI::App& app);

// Prints "latent: error: <message>" to stderr and returns 2.
int fail(const std::string& message);

}  // namespace latent::agent
