// Runs the `latent` binary under test (LATENT_BINARY) as a shell would: its exit status,
// its stdout, and its stderr (through a file, so that neither pipe can fill and block).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace latent::test {

struct CliRun {
    int status = -1;
    std::string out, err;
};

// `err_path`: where stderr goes (read back into err); empty: discarded.
inline CliRun run_cli(const std::string& args, const std::string& err_path = "") {
    const std::string cmd = std::string(LATENT_BINARY) + " " + args + " 2>" +
                            (err_path.empty() ? std::string("/dev/null") : err_path);
    CliRun r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (!err_path.empty()) {
        std::ifstream e(err_path);
        r.err.assign(std::istreambuf_iterator<char>(e), {});
    }
    return r;
}

}  // namespace latent::test
