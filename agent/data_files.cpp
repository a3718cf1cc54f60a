// Data-file lookup (see data_files.h).
#include "agent/data_files.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace latent::agent {

std::vector<std::string> data_dirs() {
    std::vector<std::string> dirs;
    if (const char* env = std::getenv("LATENT_DATA_DIR"); env && *env) dirs.emplace_back(env);
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        dirs.push_back((exe.parent_path() / "share").string());
        dirs.push_back((exe.parent_path().parent_path() / "share" / "latent").string());
    }
#ifdef LATENT_SHARE_DIR
    dirs.emplace_back(LATENT_SHARE_DIR);
#endif
    return dirs;
}

std::optional<std::string> find_data_file(const std::string& relative) {
    for (const std::string& d : data_dirs()) {
        std::error_code ec;
        const auto p = std::filesystem::path(d) / relative;
        if (std::filesystem::is_regular_file(p, ec)) return p.string();
    }
    return std::nullopt;
}

}  // namespace latent::agent
