// Logger: the lines `latent lsp` writes to stderr or its log file carry a level the editor
// can read ("[12:00:01.234] [info] ..."): "error: " and "warning: " prefixes become the
// level, anything else is info, and a line is capped.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <unistd.h>

#include "agent/lsp_commands.h"

namespace latent::agent {
namespace {

std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

TEST(LoggerTest, EachLineHasAStampAndItsLevel) {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("latent-logger-" + std::to_string(getpid())))
            .string();
    std::filesystem::remove(path);
    {
        Logger log(path);
        log("latent lsp 0.1.0 started");
        log("warning: settings: threads must be a number");
        log("error: backend: the file is not a GGUF model");
        log("backend: error: not a prefix, so info");
        log(std::string(5000, 'x'));
    }
    const auto lines = lines_of(path);
    std::filesystem::remove(path);
    ASSERT_EQ(lines.size(), 5u);
    const std::regex form(R"(^\[\d\d:\d\d:\d\d\.\d{3}\] \[(info|warning|error)\] (.*)$)");
    const std::vector<std::pair<std::string, std::string>> want = {
        {"info", "latent lsp 0.1.0 started"},
        {"warning", "settings: threads must be a number"},
        {"error", "backend: the file is not a GGUF model"},
        {"info", "backend: error: not a prefix, so info"}};
    for (size_t i = 0; i < want.size(); ++i) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(lines[i], m, form)) << lines[i];
        EXPECT_EQ(m[1], want[i].first);
        EXPECT_EQ(m[2], want[i].second);
    }
    EXPECT_EQ(lines[4].size(), std::string("[00:00:00.000] [info] ").size() + 2000);
}

}  // namespace
}  // namespace latent::agent
