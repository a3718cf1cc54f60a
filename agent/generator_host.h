// GeneratorHost: owns the generation backend's lifecycle for the language server — which
// backend the settings ask for, loading it off the request threads, and replacing it when
// they change. Not the backends themselves (backend.h, local_backend.h, remote_backend.h)
// and not what is asked of them (agent.h).
//
// Reloads are serialised on one loader thread that the host owns and joins: each
// reload() bumps a generation counter, and the loader always loads the newest settings, so
// the last setting wins and a load that finishes after a newer reload() is dropped, never
// installed. The old backend is retired before the new one is made, and the loader waits
// for its last user to let go (requests see stale() and end), so two models are never
// resident at once.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/generator.h"
#include "agent/settings.h"
#include "engine/expected.h"

namespace latent::agent {

using GeneratorFactory =
    std::function<engine::Expected<std::shared_ptr<Generator>>(const Settings& settings)>;

// The backend the settings describe: local (the engine in this process), remote, none
// (null), or — only when `allow_test_backends` — the scripted one. Never throws.
engine::Expected<std::shared_ptr<Generator>> make_generator(
    const Settings& settings, bool allow_test_backends,
    const std::function<void(const std::string&)>& log);

struct GeneratorHostOptions {
    // Makes a backend from settings; runs on the loader thread and may take minutes.
    // Exceptions (bad_alloc included) become a load error. Default: make_generator without
    // test backends.
    GeneratorFactory factory;
    // Called on the loader thread after each load that is installed: the backend (null for
    // "none" or on error) and the error ("" when none). Must not call reload() or stop().
    std::function<void(const std::shared_ptr<Generator>&, const std::string& error)> on_loaded;
    std::function<void(const std::string&)> log;
};

// Thread safety: every method may be called from any thread; callbacks run on the loader
// thread (or, for when_ready on an idle host, on the caller's) without the host's lock held.
class GeneratorHost {
public:
    explicit GeneratorHost(GeneratorHostOptions options);
    ~GeneratorHost();  // stop()
    GeneratorHost(const GeneratorHost&) = delete;
    GeneratorHost& operator=(const GeneratorHost&) = delete;

    // Asks for the backend `settings` describe. Returns at once; the loader does the work.
    void reload(const Settings& settings);
    // The installed backend (null while none is, or while a reload is pending), with the
    // generation it belongs to.
    struct Lease {
        std::shared_ptr<Generator> backend;
        uint64_t generation = 0;
    };
    Lease current() const;
    // True once a reload was asked after `generation`'s: a request holding that lease should
    // end, so that the old model can be freed.
    bool stale(uint64_t generation) const;
    bool loading() const;       // a reload is pending or running
    std::string error() const;  // the last load's error ("" when it succeeded)
    uint64_t loads() const;     // loads finished and installed (figures, tests)

    // Calls `fn` with the current lease once no reload is pending: at once on this thread
    // when none is, else on the loader thread after the newest load is installed. Pending
    // callbacks are destroyed uncalled by stop().
    void when_ready(std::function<void(const Lease&)> fn);

    // Drops pending callbacks, stops the loader (a load in progress finishes first) and
    // joins it; the backend is released. Idempotent.
    void stop();

private:
    struct Shared;  // what the retiring backend's deleter signals
    void loop();

    GeneratorHostOptions options_;
    std::shared_ptr<Shared> shared_;
    std::thread loader_;

    mutable std::mutex mu_;       // everything below
    std::condition_variable cv_;  // a reload() or stop() for the loader
    bool stopping_ = false;
    Settings wanted_;
    uint64_t requested_ = 0;  // generation asked for by the newest reload()
    uint64_t installed_ = 0;  // generation of backend_ (or of the last load's error)
    bool running_ = false;    // the loader is making a backend now
    std::shared_ptr<Generator> backend_;
    std::string error_;
    uint64_t loads_ = 0;
    std::vector<std::function<void(const Lease&)>> waiters_;
};

}  // namespace latent::agent
