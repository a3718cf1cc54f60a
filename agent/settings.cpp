// Settings (see settings.h).
#include "agent/settings.h"

#include <algorithm>

namespace latent::agent {

using nlohmann::json;

namespace {

template <class T>
T get_or(const json& j, const char* key, T fallback) {
    if (!j.is_object()) return fallback;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const std::exception&) {
        return fallback;
    }
}

}  // namespace

Settings parse_settings(const json& in, Settings s, std::vector<std::string>* problems) {
    const json& j =
        (in.is_object() && in.contains("latent") && in["latent"].is_object()) ? in["latent"] : in;
    if (!j.is_object()) return s;
    auto str = [&](const json& o, const char* key, std::string& out) {
        if (!o.is_object() || !o.contains(key) || o[key].is_null()) return;
        if (o[key].is_string())
            out = o[key].get<std::string>();
        else if (problems)
            problems->push_back(std::string(key) + " must be a string");
    };
    auto num = [&](const json& o, const char* key, int& out, int lo, int hi) {
        if (!o.is_object() || !o.contains(key) || o[key].is_null()) return;
        if (o[key].is_number_integer())
            out = static_cast<int>(std::clamp<int64_t>(o[key].get<int64_t>(), lo, hi));
        else if (problems)
            problems->push_back(std::string(key) + " must be an integer");
    };
    str(j, "backend", s.backend);
    str(j, "engine", s.engine);
    num(j, "threads", s.threads, 0, 1024);
    str(j, "model", s.model);
    if (j.contains("remote") && j["remote"].is_object()) {
        const json& r = j["remote"];
        str(r, "url", s.remote_url);
        str(r, "model", s.remote_model);
        str(r, "apiKey", s.remote_key);
        if (get_or<bool>(r, "fimViaChat", false)) s.remote_fim_api = "chat";
        std::string api = s.remote_fim_api;
        str(r, "fimApi", api);
        if (api == "completions" || api == "raw" || api == "infill" || api == "chat")
            s.remote_fim_api = api;
        else if (problems)
            problems->push_back("remote.fimApi must be completions, raw, infill or chat");
        if (r.contains("fimTemplate") && !r["fimTemplate"].is_null()) {
            // Each marker is the spelling of one special token: 64 bytes is plenty, and a
            // longer one is a mistake that would go into every prompt.
            constexpr size_t kMaxMarker = 64;
            const json& t = r["fimTemplate"];
            FimTemplate ft;
            bool ok = t.is_object();
            for (auto [key, out] : {std::pair<const char*, std::string*>{"prefix", &ft.prefix},
                                    {"suffix", &ft.suffix},
                                    {"middle", &ft.middle}}) {
                if (!ok) break;
                ok = t.contains(key) && t[key].is_string() &&
                     !t[key].get_ref<const std::string&>().empty() &&
                     t[key].get_ref<const std::string&>().size() <= kMaxMarker;
                if (ok) *out = t[key].get<std::string>();
            }
            if (ok)
                s.remote_fim_template = ft;
            else if (problems)
                problems->push_back(
                    "remote.fimTemplate must be {prefix, suffix, middle}: three marker strings "
                    "of 1 to 64 bytes");
        }
    }
    if (j.contains("completion") && j["completion"].is_object()) {
        const json& c = j["completion"];
        num(c, "maxTokens", s.max_tokens, 1, 1024);
        num(c, "contextTokens", s.context_tokens, 0, 32768);
        num(c, "prefixTokens", s.prefix_tokens, 16, 65536);
        num(c, "suffixTokens", s.suffix_tokens, 0, 32768);
        num(c, "maxTimeMs", s.max_time_ms, 0, 600000);
        num(c, "latencyMs", s.latency_ms, 0, 600000);
    }
    if (j.contains("chat") && j["chat"].is_object()) {
        num(j["chat"], "maxTokens", s.chat_max_tokens, 1, 8192);
        num(j["chat"], "contextTokens", s.chat_context_tokens, 0, 65536);
    }
    if (j.contains("agent") && j["agent"].is_object())
        num(j["agent"], "maxSteps", s.agent_max_steps, 1, 64);
    if (j.contains("nextEdit") && j["nextEdit"].is_object()) {
        const json& n = j["nextEdit"];
        s.next_edit = get_or<bool>(n, "enabled", s.next_edit);
        s.next_edit_model = get_or<bool>(n, "model", s.next_edit_model);
        num(n, "regionLines", s.next_edit_region_lines, 4, 64);
    }
    if (j.contains("index") && j["index"].is_object()) {
        const json& x = j["index"];
        s.index = get_or<bool>(x, "enabled", s.index);
        s.exclude = get_or<std::vector<std::string>>(x, "exclude", s.exclude);
        str(x, "db", s.index_db);
    }
    int cache_mb = static_cast<int>(std::min<uint64_t>(s.cache_mb, 1 << 20));
    num(j, "cacheMb", cache_mb, 16, 1 << 20);
    s.cache_mb = static_cast<uint64_t>(cache_mb);
    s.prefix_cache = get_or<bool>(j, "prefixCache", s.prefix_cache);
    s.mtp = get_or<bool>(j, "mtp", s.mtp);
    if (j.contains("diskCache") && j["diskCache"].is_object()) {
        const json& d = j["diskCache"];
        str(d, "dir", s.disk_cache_dir);
        int disk_mb = static_cast<int>(std::min<uint64_t>(s.disk_cache_mb, 1 << 24));
        num(d, "mb", disk_mb, 0, 1 << 24);
        s.disk_cache_mb = static_cast<uint64_t>(disk_mb);
    }
    s.script = get_or<std::vector<std::string>>(j, "script", s.script);
    num(j, "scriptDelayMs", s.script_delay_ms, 0, 60000);
    return s;
}

json redacted(const Settings& s) {
    return {{"backend", s.backend},
            {"engine", s.engine},
            {"threads", s.threads},
            {"model", s.model},
            {"remote",
             {{"url", s.remote_url},
              {"model", s.remote_model},
              {"apiKey", s.remote_key.empty() ? "" : "***"},
              {"fimApi", s.remote_fim_api},
              {"fimTemplate",
               {{"prefix", s.remote_fim_template.prefix},
                {"suffix", s.remote_fim_template.suffix},
                {"middle", s.remote_fim_template.middle}}}}},
            {"completion",
             {{"maxTokens", s.max_tokens},
              {"contextTokens", s.context_tokens},
              {"prefixTokens", s.prefix_tokens},
              {"suffixTokens", s.suffix_tokens},
              {"maxTimeMs", s.max_time_ms},
              {"latencyMs", s.latency_ms}}},
            {"chat", {{"maxTokens", s.chat_max_tokens}, {"contextTokens", s.chat_context_tokens}}},
            {"agent", {{"maxSteps", s.agent_max_steps}}},
            {"nextEdit",
             {{"enabled", s.next_edit},
              {"model", s.next_edit_model},
              {"regionLines", s.next_edit_region_lines}}},
            {"index", {{"enabled", s.index}, {"exclude", s.exclude}}},
            {"cacheMb", s.cache_mb},
            {"prefixCache", s.prefix_cache},
            {"mtp", s.mtp},
            {"diskCache", {{"dir", s.disk_cache_dir}, {"mb", s.disk_cache_mb}}}};
}

bool backend_configured(const Settings& s) {
    if (s.backend == "local") return !s.model.empty();
    if (s.backend == "remote") return !s.remote_url.empty();
    return true;
}

bool backend_settings_differ(const Settings& a, const Settings& b) {
    if (a.backend != b.backend) return true;
    // Only what the chosen backend reads: an API key set while the model is local must not
    // reload a model of gigabytes, nor a cache size change a remote connection.
    if (a.backend == "local")
        return a.engine != b.engine || a.model != b.model || a.threads != b.threads ||
               a.cache_mb != b.cache_mb || a.prefix_cache != b.prefix_cache || a.mtp != b.mtp ||
               a.disk_cache_dir != b.disk_cache_dir || a.disk_cache_mb != b.disk_cache_mb;
    if (a.backend == "remote")
        return a.remote_url != b.remote_url || a.remote_model != b.remote_model ||
               a.remote_key != b.remote_key || a.remote_fim_api != b.remote_fim_api ||
               a.remote_fim_template != b.remote_fim_template;
    if (a.backend == "scripted")
        return a.script != b.script || a.script_delay_ms != b.script_delay_ms;
    return false;  // "none", or a name that fails to load either way
}

}  // namespace latent::agent
