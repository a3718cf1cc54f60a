// ProposedEdits: the changes agent mode has proposed so far, kept as each file's text
// before and after — never written to disk. Later tool calls read the proposed text
// (an edit builds on the previous one), and the user reviews the whole as one
// multi-file change.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace latent::agent {

struct ProposedFile {
    std::string real;  // real path (the key)
    std::string uri;   // file: URI
    std::string path;  // as shown (folder-relative)
    bool created = false;
    std::string old_text;  // the file when the first edit was proposed ("" when created)
    std::string new_text;
};

// Thread safety: none (one agent run owns one).
class ProposedEdits {
public:
    // The proposed text of `real`, if any edit touched it.
    std::optional<std::string> text(const std::string& real) const;
    // Records `new_text` for the file; the first call for a file also records what it was
    // (`old_text`) and whether it is new.
    void set(const std::string& real, const std::string& uri, const std::string& path, bool created,
             const std::string& old_text, std::string new_text);
    // Files whose proposed text differs from what they were, in the order first touched.
    std::vector<ProposedFile> files() const;
    size_t touched() const { return order_.size(); }
    bool empty() const { return files().empty(); }

private:
    std::map<std::string, ProposedFile> files_;
    std::vector<std::string> order_;
};

}  // namespace latent::agent
