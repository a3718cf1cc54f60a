// NextEditState (see next_edit_state.h).
#include "agent/next_edit_state.h"

namespace latent::agent {

namespace {
constexpr size_t kMaxDismissed = 256;
}

NextEditState::NextEditState(std::function<int64_t()> now_ms, EditHistoryOptions options)
    : now_ms_(std::move(now_ms)), history_(options) {}

void NextEditState::record(const std::string& uri, std::string_view after,
                           const AppliedChange& change) {
    const int64_t now = now_ms_();
    std::lock_guard<std::mutex> lock(mu_);
    if (change.whole) {
        history_.forget(uri);
        return;
    }
    history_.record(uri, after, change.start, change.removed, change.new_end, now);
}

void NextEditState::forget(const std::string& uri) {
    std::lock_guard<std::mutex> lock(mu_);
    history_.forget(uri);
}

std::vector<EditHunk> NextEditState::hunks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return history_.hunks();
}

std::string NextEditState::group_of(std::string_view id) {
    const size_t hash = id.rfind('#');
    return std::string(id.substr(0, hash));
}

bool NextEditState::dismissed(const std::string& group) const {
    std::lock_guard<std::mutex> lock(mu_);
    return dismissed_.count(group) > 0;
}

bool NextEditState::feedback(const std::string& id, const std::string& action) {
    std::lock_guard<std::mutex> lock(mu_);
    if (action == "shown") {
        ++shown_;
    } else if (action == "accepted") {
        ++accepted_;
    } else if (action == "dismissed") {
        ++dismissed_count_;
        const std::string group = group_of(id);
        if (!group.empty() && dismissed_.insert(group).second) {
            dismissed_order_.push_back(group);
            if (dismissed_order_.size() > kMaxDismissed) {
                dismissed_.erase(dismissed_order_.front());
                dismissed_order_.pop_front();
            }
        }
    } else {
        return false;
    }
    return true;
}

void NextEditState::answered(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    if (reason == "index") ++index_;
    if (reason == "model") ++model_;
}

nlohmann::json NextEditState::counters() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {{"shown", shown_},
            {"accepted", accepted_},
            {"dismissed", dismissed_count_},
            {"index", index_},
            {"model", model_}};
}

}  // namespace latent::agent
