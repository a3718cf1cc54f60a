// ScratchDir: a private temporary folder (mkdtemp under /tmp) removed with everything in
// it when the object goes: the benchmarks' databases, workspaces and file lists.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace latent::agent {

class ScratchDir {
public:
    // `prefix`: the folder's name before the random part, e.g. "latent-bench-index".
    explicit ScratchDir(const std::string& prefix) {
        std::string t = "/tmp/" + prefix + "-XXXXXX";
        std::vector<char> buf(t.begin(), t.end());
        buf.push_back('\0');
        if (mkdtemp(buf.data())) path_ = buf.data();
    }
    ~ScratchDir() {
        if (path_.empty()) return;
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    bool ok() const { return !path_.empty(); }  // false: the folder could not be made
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

}  // namespace latent::agent
