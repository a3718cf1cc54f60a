// Text files (see text_files.h).
#include "agent/text_files.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace latent::agent {

bool is_binary(std::string_view text) {
    return text.substr(0, 8192).find('\0') != std::string_view::npos;
}

std::optional<std::string> read_text_file(const std::string& path, size_t max_bytes,
                                          std::string* why) {
    auto fail = [why](const char* reason) -> std::optional<std::string> {
        if (why) *why = reason;
        return std::nullopt;
    };
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return fail("The file does not exist.");
    if (static_cast<size_t>(st.st_size) > max_bytes) {
        if (why) *why = "The file is larger than " + std::to_string(max_bytes >> 20) + " MiB.";
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    if (!in && !in.eof()) return fail("The file could not be read.");
    std::string text = ss.str();
    if (text.size() > max_bytes) return fail("The file is too large.");
    if (is_binary(text)) return fail("The file is binary.");
    return text;
}

}  // namespace latent::agent
