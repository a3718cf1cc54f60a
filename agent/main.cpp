// `latent`: one executable, one subcommand per job (`latent --help` lists them).
#include <cstdio>
#include <new>

#include "agent/commands.h"

int main(int argc, char** argv) {
    CLI::App app{
        "Latent: a local-first AI coding assistant with a DeepSeek MoE engine.\n"
        "Run `latent <command> --help` for a command's options."};
    app.set_version_flag("--version", std::string("latent ") + LATENT_VERSION);
    app.require_subcommand(1);
    int exit_code = 0;
    latent::agent::register_model_commands(app, exit_code);
    latent::agent::register_bench_commands(app, exit_code);
    latent::agent::register_index_commands(app, exit_code);
    latent::agent::register_lsp_command(app, exit_code);
    latent::agent::register_complete_command(app, exit_code);
    latent::agent::register_demo_command(app, exit_code);
    latent::agent::register_bench_lsp_command(app, exit_code);
    latent::agent::register_bench_replay_command(app, exit_code);
    latent::agent::register_bench_lifecycle_command(app, exit_code);
    latent::agent::register_bench_json_mask_command(app, exit_code);
    latent::agent::register_bench_soak_command(app, exit_code);
    latent::agent::register_bench_json_decode_command(app, exit_code);
    latent::agent::register_bench_chat_cache_command(app, exit_code);
    latent::agent::register_bench_next_edit_command(app, exit_code);
    latent::agent::register_bench_context_command(app, exit_code);
    latent::agent::register_serve_commands(app, exit_code);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::bad_alloc&) {
        return latent::agent::fail("not enough memory");
    }
    return exit_code;
}
