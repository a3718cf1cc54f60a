// NextEditState: what the server keeps for next-edit suggestions — the user's recent edits
// (EditHistory, recorded from document sync), the suggestion groups the user dismissed
// (not offered again), and the counters `latent/status` shows (shown, accepted, dismissed,
// answers from the index and from the model; kept locally, never sent anywhere).
//
// Thread safety: every method locks; record() runs on the protocol's reading thread,
// the rest on workers.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/documents.h"
#include "agent/edit_history.h"

namespace latent::agent {

class NextEditState {
public:
    // `now_ms`: the clock the history's coalescing and ages use (tests inject one).
    explicit NextEditState(std::function<int64_t()> now_ms, EditHistoryOptions options = {});

    int64_t now() const { return now_ms_(); }
    // One applied change of document sync; a whole replacement forgets the document's
    // history (nothing a person would call one edit).
    void record(const std::string& uri, std::string_view after, const AppliedChange& change);
    void forget(const std::string& uri);
    std::vector<EditHunk> hunks() const;

    // A suggestion's id is "<group>#<n>": the group names what it follows (one rename,
    // one signature change, one model rewrite), so dismissing one dismisses its group.
    static std::string group_of(std::string_view id);
    bool dismissed(const std::string& group) const;
    // latent/nextEditFeedback: "shown" | "accepted" | "dismissed"; false for another action.
    bool feedback(const std::string& id, const std::string& action);
    // An answer with suggestions from "index" or "model".
    void answered(const std::string& reason);
    nlohmann::json counters() const;

private:
    std::function<int64_t()> now_ms_;
    mutable std::mutex mu_;
    EditHistory history_;
    std::set<std::string> dismissed_;
    std::deque<std::string> dismissed_order_;  // oldest first, capped
    uint64_t shown_ = 0, accepted_ = 0, dismissed_count_ = 0, index_ = 0, model_ = 0;
};

}  // namespace latent::agent
