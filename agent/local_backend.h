// LocalBackend: the engine in this process behind the agent's Backend interface. One
// engine thread owns the model and runs jobs by priority (inline completion, then chat,
// then cache warming); each owner (an open document, the chat) keeps its own Session, so
// consecutive prompts for one document reuse their common prefix (Session::prefill).
// Not a scheduler with batching: that is engine/'s future work.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/backend.h"
#include "agent/chat_template.h"

namespace latent::engine {
class Model;
class Tokenizer;
class Backend;
class LatentCache;
class Session;
}  // namespace latent::engine

namespace latent::agent {

struct LocalBackendOptions {
    std::string model_path;
    std::string engine = "cpu";  // make_backend name: cpu | reference | cuda
    int threads = 0;             // 0: all cores
    // Latent-cache memory for all sessions together. Default 1 GiB.
    uint64_t cache_bytes = 1ull << 30;
    // Owners whose sessions are kept (least recently used dropped first). Default 8.
    size_t max_sessions = 8;
    // False: every prompt is computed from scratch (to measure what the reuse saves).
    bool prefix_cache = true;
};

// Thread safety: all public methods may be called from any thread; model work runs on the
// engine thread, callers block on their job (fim/chat) or return at once (warm/release).
class LocalBackend : public Backend {
public:
    static engine::Expected<std::unique_ptr<LocalBackend>> create(
        const LocalBackendOptions& options);
    ~LocalBackend() override;

    std::string describe() const override;
    engine::Expected<GenerateResult> fim(const FimPrompt& prompt,
                                         const GenerateOptions& options) override;
    engine::Expected<GenerateResult> chat(const std::vector<ChatMessage>& messages,
                                          const GenerateOptions& options) override;
    void warm(const std::string& owner, const FimPrompt& stable) override;
    void release(const std::string& owner) override;
    nlohmann::json stats() const override;

private:
    enum Priority { kCompletion = 0, kChat = 1, kWarm = 2 };
    struct Job {
        Priority priority;
        uint64_t seq;
        std::function<void()> run;
    };
    struct OwnerSession;

    LocalBackend() = default;
    void loop();
    void submit(Priority p, std::function<void()> run);
    OwnerSession& session_for(const std::string& owner);  // engine thread only
    std::vector<int32_t> fim_tokens(const FimPrompt& p, bool with_suffix) const;
    engine::Expected<GenerateResult> generate(const std::string& owner,
                                              const std::vector<int32_t>& prompt,
                                              const GenerateOptions& options);

    LocalBackendOptions options_;
    std::unique_ptr<engine::Model> model_;
    std::unique_ptr<engine::Tokenizer> tokenizer_;
    std::unique_ptr<engine::Backend> engine_;
    std::unique_ptr<engine::LatentCache> cache_;
    std::string engine_name_;
    ChatFamily family_ = ChatFamily::kDeepSeekV3;

    // Engine thread state.
    std::list<std::string> lru_;  // owners, most recent first
    std::map<std::string, std::unique_ptr<OwnerSession>> sessions_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Job> jobs_;
    uint64_t next_seq_ = 0;
    bool stopping_ = false;
    std::thread thread_;
    // Figures.
    uint64_t prompt_tokens_ = 0, reused_tokens_ = 0, cache_bytes_in_use_ = 0;
    size_t sessions_count_ = 0;
};

}  // namespace latent::agent
