// GeneratorHost (see backend_host.h).
#include "agent/generator_host.h"

#include <chrono>
#include <exception>

#include "agent/local_generator.h"
#include "agent/remote_generator.h"

namespace latent::agent {

using Clock = std::chrono::steady_clock;

engine::Expected<std::shared_ptr<Generator>> make_generator(
    const Settings& s, bool allow_test_backends,
    const std::function<void(const std::string&)>& log) {
    auto say = [&](const std::string& line) {
        if (log) log(line);
    };
    try {
        if (s.backend == "none") return std::shared_ptr<Generator>();
        if (s.backend == "scripted" && allow_test_backends)
            return std::shared_ptr<Generator>(
                std::make_shared<ScriptedGenerator>(s.script, s.script_delay_ms));
        if (s.backend == "remote") {
            RemoteOptions ro;
            ro.url = s.remote_url;
            ro.model = s.remote_model;
            ro.api_key = s.remote_key;
            ro.fim_api = s.remote_fim_api;
            ro.fim_template = s.remote_fim_template;
            ro.log = log;
            auto r = RemoteGenerator::create(ro);
            if (!r) return r.error();
            return std::shared_ptr<Generator>(std::move(*r));
        }
        if (s.backend == "local") {
            if (s.model.empty())
                return engine::make_error(
                    "no model: set latent.modelPath (the \"model\" setting of latent lsp) to a "
                    "GGUF file, or use a remote backend");
            LocalGeneratorOptions lo;
            lo.model_path = s.model;
            lo.engine = s.engine;
            lo.threads = s.threads;
            lo.cache_bytes = s.cache_mb << 20;
            lo.prefix_cache = s.prefix_cache;
            lo.mtp = s.mtp;
            if (s.disk_cache_mb > 0) lo.disk_dir = s.disk_cache_dir;
            lo.disk_bytes = s.disk_cache_mb << 20;
            const auto t0 = Clock::now();
            auto r = LocalGenerator::create(lo);
            if (!r) return r.error();
            if (!(*r)->disk_error().empty())
                say("warning: backend: no disk cache: " + (*r)->disk_error());
            say("backend: loaded " + s.model + " in " +
                std::to_string(std::chrono::duration<double>(Clock::now() - t0).count()) + " s");
            return std::shared_ptr<Generator>(std::move(*r));
        }
        return engine::make_error("unknown backend '" + s.backend + "' (local | remote | none)");
    } catch (const std::bad_alloc&) {
        return engine::make_error("out of memory while starting the backend");
    } catch (const std::exception& e) {
        return engine::make_error(std::string("the backend failed to start: ") + e.what());
    }
}

// Counts the backends handed out that some request may still hold. The deleter of every
// installed backend decrements it, on whichever thread lets go last.
struct GeneratorHost::Shared {
    std::mutex mu;
    std::condition_variable cv;
    int live = 0;
    bool stopping = false;
};

GeneratorHost::GeneratorHost(GeneratorHostOptions options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {
    if (!options_.factory)
        options_.factory = [log = options_.log](const Settings& s) {
            return make_generator(s, false, log);
        };
    loader_ = std::thread([this] { loop(); });
}

GeneratorHost::~GeneratorHost() { stop(); }

void GeneratorHost::reload(const Settings& settings) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        wanted_ = settings;
        ++requested_;
    }
    cv_.notify_all();
}

GeneratorHost::Lease GeneratorHost::current() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (installed_ != requested_) return {nullptr, requested_};
    return {backend_, installed_};
}

bool GeneratorHost::stale(uint64_t generation) const {
    std::lock_guard<std::mutex> lock(mu_);
    return requested_ != generation || stopping_;
}

bool GeneratorHost::loading() const {
    std::lock_guard<std::mutex> lock(mu_);
    return installed_ != requested_;
}

std::string GeneratorHost::error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
}

uint64_t GeneratorHost::loads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return loads_;
}

void GeneratorHost::when_ready(std::function<void(const Lease&)> fn) {
    Lease now;
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        if (installed_ != requested_) {
            waiters_.push_back(std::move(fn));
            return;
        }
        now = {backend_, installed_};
    }
    fn(now);
}

void GeneratorHost::stop() {
    std::vector<std::function<void(const Lease&)>> dropped;
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
        dropped.swap(waiters_);
    }
    {
        std::lock_guard<std::mutex> lock(shared_->mu);
        shared_->stopping = true;
    }
    cv_.notify_all();
    shared_->cv.notify_all();
    dropped.clear();  // outside the lock: their destructors may answer requests
    if (loader_.joinable()) loader_.join();
    std::shared_ptr<Generator> last;
    {
        std::lock_guard<std::mutex> lock(mu_);
        last.swap(backend_);
    }
}

void GeneratorHost::loop() {
    auto log = [this](const std::string& line) {
        if (options_.log) options_.log(line);
    };
    for (;;) {
        Settings s;
        uint64_t generation;
        std::shared_ptr<Generator> retired;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [this] { return stopping_ || requested_ != installed_; });
            if (stopping_) return;
            s = wanted_;
            generation = requested_;
            retired.swap(backend_);
            running_ = true;
        }
        // Never two models resident: the old one goes first, and its last user with it
        // (requests holding it see stale() and end).
        retired.reset();
        {
            std::unique_lock<std::mutex> lock(shared_->mu);
            shared_->cv.wait(lock, [this] { return shared_->live == 0 || shared_->stopping; });
            if (shared_->stopping) return;
        }
        engine::Expected<std::shared_ptr<Generator>> made = engine::make_error("not loaded");
        try {
            made = options_.factory(s);
        } catch (const std::bad_alloc&) {
            made = engine::make_error("out of memory while starting the backend");
        } catch (const std::exception& e) {
            made = engine::make_error(std::string("the backend failed to start: ") + e.what());
        }
        std::shared_ptr<Generator> b;
        std::string error;
        if (made && *made) {
            // Hand out a wrapper whose deleter tells the loader when the last user let go.
            {
                std::lock_guard<std::mutex> lock(shared_->mu);
                ++shared_->live;
            }
            Generator* raw = made->get();
            b = std::shared_ptr<Generator>(
                raw, [keep = std::move(*made), shared = shared_](Generator*) mutable {
                    keep.reset();
                    {
                        std::lock_guard<std::mutex> lock(shared->mu);
                        --shared->live;
                    }
                    shared->cv.notify_all();
                });
        } else if (!made) {
            error = made.error().message;
        }
        std::vector<std::function<void(const Lease&)>> ready;
        bool installed = false;
        {
            std::lock_guard<std::mutex> lock(mu_);
            running_ = false;
            // A newer reload() that came while this one loaded wins: this one is dropped
            // (below, outside the lock) and the loop loads the newest instead.
            if (!stopping_ && requested_ == generation) {
                backend_ = b;
                error_ = error;
                installed_ = generation;
                ++loads_;
                ready.swap(waiters_);
                installed = true;
            }
        }
        if (!installed) {
            log("backend: a newer setting came while loading; this load is dropped");
            continue;
        }
        // Nothing chosen yet (the first run) is a warning; a load that failed is an error.
        if (!error.empty())
            log(std::string(backend_configured(s) ? "error" : "warning") + ": backend: " + error);
        if (b) log("backend: " + b->describe());
        if (options_.on_loaded) options_.on_loaded(b, error);
        const Lease lease{b, generation};
        for (auto& fn : ready) fn(lease);
    }
}

}  // namespace latent::agent
