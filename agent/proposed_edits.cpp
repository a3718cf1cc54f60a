// ProposedEdits (see proposed_edits.h).
#include "agent/proposed_edits.h"

namespace latent::agent {

std::optional<std::string> ProposedEdits::text(const std::string& real) const {
    const auto it = files_.find(real);
    if (it == files_.end()) return std::nullopt;
    return it->second.new_text;
}

void ProposedEdits::set(const std::string& real, const std::string& uri, const std::string& path,
                        bool created, const std::string& old_text, std::string new_text) {
    auto it = files_.find(real);
    if (it == files_.end()) {
        order_.push_back(real);
        it = files_.emplace(real, ProposedFile{real, uri, path, created, old_text, {}}).first;
    }
    it->second.new_text = std::move(new_text);
}

std::vector<ProposedFile> ProposedEdits::files() const {
    std::vector<ProposedFile> out;
    for (const auto& real : order_) {
        const ProposedFile& f = files_.at(real);
        if (f.created || f.new_text != f.old_text) out.push_back(f);
    }
    return out;
}

}  // namespace latent::agent
