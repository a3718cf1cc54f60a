// `latent bench soak-serve`: `latent serve` as a child process under a long mixed load —
// FIM completions, chats whole and streamed, JSON output (json_object, a nested
// json_schema), tool calls (auto and required, whole and streamed) and clients that drop
// the connection mid-stream, mid-generation or mid-body — while the server's RSS is
// sampled every second. It answers: does the server stay up, leak, answer 5xx, and keep
// its JSON and tool-call promises? Plain sockets, no client library; progress on stderr,
// one JSON line on stdout (shared/BENCHMARKS.md). Not a test: it runs for minutes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "agent/cli_client.h"
#include "agent/commands.h"

extern char** environ;

namespace latent::agent {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// The kinds of request in the mix, each as often as the others (clients take them in
// turn, each client starting at a different one).
enum class Kind {
    kFim,
    kChat,
    kChatStream,
    kJsonObject,
    kJsonSchema,
    kToolsAuto,
    kToolsRequired,
    kToolsAutoStream,
    kToolsRequiredStream,
    kDropMidStream,  // a streamed chat, closed after its first event
    kDropMidAnswer,  // a whole chat, closed while it is generated
    kDropMidBody,    // half a body sent, then closed
    kCount
};

const char* kind_name(Kind k) {
    static const char* const names[] = {"fim",
                                        "chat",
                                        "chat_stream",
                                        "json_object",
                                        "json_schema",
                                        "tools_auto",
                                        "tools_required",
                                        "tools_auto_stream",
                                        "tools_required_stream",
                                        "drop_mid_stream",
                                        "drop_mid_answer",
                                        "drop_mid_body"};
    return names[static_cast<int>(k)];
}

enum class Drop { kNone, kMidStream, kMidAnswer, kMidBody };

struct SoakRequest {
    std::string path;
    std::string body;
    bool stream = false;
    Drop drop = Drop::kNone;
    bool json_output = false;    // the content must parse as JSON
    bool tools = false;          // tool calls may come; their arguments must parse
    bool tool_required = false;  // at least one call must come
};

// A small nested schema: an object in an object, an array of enums, an integer.
const json& nested_schema() {
    static const json s = json::parse(R"({
      "type": "object",
      "properties": {
        "name": {"type": "string"},
        "point": {"type": "object",
                  "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                  "required": ["x", "y"]},
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3}
      },
      "required": ["name", "point"]
    })");
    return s;
}

const json& tool_list() {
    static const json t = json::parse(R"([
      {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string"},
                                      "unit": {"enum": ["c", "f"]}},
                       "required": ["city"]},
        "strict": true}},
      {"type": "function", "function": {
        "name": "search_code", "description": "Search the workspace",
        "parameters": {"type": "object",
                       "properties": {"query": {"type": "string"},
                                      "max_results": {"type": "integer"}},
                       "required": ["query"]}}}
    ])");
    return t;
}

// The request of kind `k`; `r` varies the prompt and the lengths.
SoakRequest make_request(Kind k, uint32_t r) {
    static const char* const kFunctions[] = {"add", "parse_header", "merge_sorted", "lru_get"};
    const std::string fn = kFunctions[r % 4];
    const int max_tokens = 16 + static_cast<int>(r % 33);  // 16..48
    SoakRequest q;
    json body;
    auto chat = [&](const std::string& text) {
        body = {
            {"messages", json::array({{{"role", "system"}, {"content", "You are a careful coder."}},
                                      {{"role", "user"}, {"content", text}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0.8},
            {"seed", r}};
        q.path = "/v1/chat/completions";
    };
    switch (k) {
        case Kind::kFim:
            q.path = "/v1/completions";
            body = {{"prompt", "# utilities\n\ndef " + fn + "(a, b):\n    \"\"\"" + fn +
                                   " a and b.\"\"\"\n    "},
                    {"suffix", "\n\n\nif __name__ == \"__main__\":\n    print(" + fn + "(1, 2))\n"},
                    {"max_tokens", max_tokens},
                    {"temperature", 0.2},
                    {"seed", r}};
            break;
        case Kind::kChat:
        case Kind::kChatStream:
        case Kind::kDropMidStream:
        case Kind::kDropMidAnswer:
        case Kind::kDropMidBody:
            chat("Write a Python function " + fn + " and explain it briefly.");
            if (k == Kind::kDropMidAnswer) body["max_tokens"] = 256;  // long enough to drop
            q.stream = k == Kind::kChatStream || k == Kind::kDropMidStream;
            q.drop = k == Kind::kDropMidStream   ? Drop::kMidStream
                     : k == Kind::kDropMidAnswer ? Drop::kMidAnswer
                     : k == Kind::kDropMidBody   ? Drop::kMidBody
                                                 : Drop::kNone;
            break;
        case Kind::kJsonObject:
            chat("Describe the function " + fn + " as a JSON object.");
            body["max_tokens"] = max_tokens + 32;
            body["response_format"] = {{"type", "json_object"}};
            q.json_output = true;
            break;
        case Kind::kJsonSchema:
            chat("Give a name, a point and tags for " + fn + " as JSON.");
            body["max_tokens"] = max_tokens + 48;
            body["response_format"] = {
                {"type", "json_schema"},
                {"json_schema",
                 {{"name", "thing"}, {"strict", true}, {"schema", nested_schema()}}}};
            q.json_output = true;
            break;
        case Kind::kToolsAuto:
        case Kind::kToolsRequired:
        case Kind::kToolsAutoStream:
        case Kind::kToolsRequiredStream:
            chat("What is the weather in Paris, and where is " + fn + " defined?");
            body["max_tokens"] = max_tokens + 48;
            body["tools"] = tool_list();
            q.tool_required = k == Kind::kToolsRequired || k == Kind::kToolsRequiredStream;
            body["tool_choice"] = q.tool_required ? "required" : "auto";
            q.stream = k == Kind::kToolsAutoStream || k == Kind::kToolsRequiredStream;
            q.tools = true;
            break;
        case Kind::kCount:
            break;
    }
    if (q.stream) body["stream"] = true;
    q.body = body.dump();
    return q;
}

struct HttpAnswer {
    int status = 0;           // 0: no status line came
    bool conn_error = false;  // connect, send or receive failed (or timed out)
    std::string body;         // de-chunked
};

int connect_loopback(uint16_t port, double timeout_s) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_s);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// A chunked body's data; what is there when the chunks are cut short.
std::string dechunk(std::string_view raw) {
    std::string out;
    while (!raw.empty()) {
        const size_t eol = raw.find("\r\n");
        if (eol == std::string_view::npos) break;
        size_t len = 0;
        try {
            len = std::stoul(std::string(raw.substr(0, eol)), nullptr, 16);
        } catch (...) {
            break;
        }
        raw.remove_prefix(eol + 2);
        if (len == 0) break;
        out.append(raw.substr(0, len));
        raw.remove_prefix(std::min(raw.size(), len + 2));
    }
    return out;
}

// One request on its own connection (every answer closes it), dropped as `q.drop` says.
HttpAnswer exchange(uint16_t port, const SoakRequest& q, std::mt19937& rng) {
    HttpAnswer a;
    const int fd = connect_loopback(port, 300);
    if (fd < 0) {
        a.conn_error = true;
        return a;
    }
    const std::string head = "POST " + q.path +
                             " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             "Content-Length: " +
                             std::to_string(q.body.size()) + "\r\n\r\n";
    if (q.drop == Drop::kMidBody) {
        (void)send_all(fd, head + q.body.substr(0, q.body.size() / 2));
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
        ::close(fd);
        return a;
    }
    if (!send_all(fd, head + q.body)) {
        ::close(fd);
        a.conn_error = true;
        return a;
    }
    if (q.drop == Drop::kMidAnswer) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 400));
        ::close(fd);
        return a;
    }
    std::string raw;
    char buf[16384];
    bool failed = false;
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n == 0) break;
        if (n < 0) {
            failed = errno != ECONNRESET || raw.empty();
            break;
        }
        raw.append(buf, static_cast<size_t>(n));
        // Dropping mid-stream: after the headers and the first event of the body.
        if (q.drop == Drop::kMidStream && raw.find("\r\n\r\n") != std::string::npos &&
            raw.find("data: ", raw.find("\r\n\r\n")) != std::string::npos)
            break;
    }
    ::close(fd);
    const size_t end = raw.find("\r\n\r\n");
    if (raw.rfind("HTTP/1.", 0) == 0 && raw.size() > 12) a.status = std::atoi(raw.c_str() + 9);
    if (q.drop == Drop::kMidStream) return a;
    if (failed || end == std::string::npos || a.status == 0) {
        a.conn_error = true;
        return a;
    }
    std::string headers = raw.substr(0, end);
    std::transform(headers.begin(), headers.end(), headers.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const std::string_view body = std::string_view(raw).substr(end + 4);
    a.body = headers.find("transfer-encoding: chunked") != std::string::npos ? dechunk(body)
                                                                             : std::string(body);
    return a;
}

// What an answer said, whole or streamed: its text and its tool calls' arguments.
struct Answer {
    bool ok = false;  // the body had the expected shape
    std::string content;
    std::vector<std::string> arguments;  // one per tool call
    std::string finish_reason;
};

Answer read_answer(const SoakRequest& q, const std::string& body) {
    Answer a;
    auto take_choice = [&](const json& c, bool streamed) {
        if (!c.is_object()) return;
        if (c.contains("finish_reason") && c["finish_reason"].is_string())
            a.finish_reason = c["finish_reason"];
        if (c.contains("text") && c["text"].is_string()) a.content += c["text"].get<std::string>();
        const char* key = streamed ? "delta" : "message";
        if (!c.contains(key) || !c[key].is_object()) return;
        const json& m = c[key];
        if (m.contains("content") && m["content"].is_string())
            a.content += m["content"].get<std::string>();
        if (m.contains("tool_calls") && m["tool_calls"].is_array())
            for (const json& t : m["tool_calls"])
                if (t.contains("function") && t["function"].contains("arguments") &&
                    t["function"]["arguments"].is_string())
                    a.arguments.push_back(t["function"]["arguments"]);
    };
    if (!q.stream) {
        const json j = json::parse(body, nullptr, false);
        if (j.is_discarded() || !j.contains("choices") || !j["choices"].is_array() ||
            j["choices"].empty())
            return a;
        take_choice(j["choices"][0], false);
        a.ok = true;
        return a;
    }
    bool done = false;
    for (size_t at = 0; at < body.size();) {
        size_t next = body.find("\n\n", at);
        if (next == std::string::npos) next = body.size();
        const std::string_view event = std::string_view(body).substr(at, next - at);
        at = next + 2;
        if (event.rfind("data: ", 0) != 0) continue;
        const std::string_view data = event.substr(6);
        if (data == "[DONE]") {
            done = true;
            continue;
        }
        const json j = json::parse(data, nullptr, false);
        if (j.is_discarded() || j.contains("error")) return a;
        if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty())
            take_choice(j["choices"][0], true);
    }
    a.ok = done;
    return a;
}

struct KindStats {
    uint64_t requests = 0, ok = 0, conn_errors = 0, bad_bodies = 0;
    std::map<int, uint64_t> status;  // non-2xx answers by status
    std::vector<double> ms;          // latency of answered requests
    uint64_t json_answers = 0, json_parsed = 0;
    uint64_t with_calls = 0, calls = 0, args_parsed = 0, required_without_call = 0;
    std::map<std::string, uint64_t> finish;

    void merge(const KindStats& o) {
        requests += o.requests, ok += o.ok, conn_errors += o.conn_errors;
        bad_bodies += o.bad_bodies;
        for (const auto& [s, n] : o.status) status[s] += n;
        ms.insert(ms.end(), o.ms.begin(), o.ms.end());
        json_answers += o.json_answers, json_parsed += o.json_parsed;
        with_calls += o.with_calls, calls += o.calls, args_parsed += o.args_parsed;
        required_without_call += o.required_without_call;
        for (const auto& [f, n] : o.finish) finish[f] += n;
    }
};

// One request of kind k, its outcome added to s.
void run_one(uint16_t port, Kind k, uint32_t r, std::mt19937& rng, KindStats& s) {
    const SoakRequest q = make_request(k, r);
    const auto t0 = Clock::now();
    const HttpAnswer h = exchange(port, q, rng);
    const double ms = ms_since(t0);
    ++s.requests;
    if (h.conn_error) {
        ++s.conn_errors;
        return;
    }
    if (q.drop != Drop::kNone) {  // no answer read; a status seen before the drop counts
        if (h.status != 0 && (h.status < 200 || h.status > 299)) ++s.status[h.status];
        return;
    }
    if (h.status < 200 || h.status > 299) {
        ++s.status[h.status];
        return;
    }
    ++s.ok;
    s.ms.push_back(ms);
    const Answer a = read_answer(q, h.body);
    if (!a.ok) {
        ++s.bad_bodies;
        return;
    }
    ++s.finish[a.finish_reason.empty() ? "none" : a.finish_reason];
    if (q.json_output) {
        ++s.json_answers;
        if (!json::parse(a.content, nullptr, false).is_discarded()) ++s.json_parsed;
    }
    if (q.tools) {
        if (!a.arguments.empty()) ++s.with_calls;
        if (q.tool_required && a.arguments.empty()) ++s.required_without_call;
        for (const std::string& args : a.arguments) {
            ++s.calls;
            if (!json::parse(args, nullptr, false).is_discarded()) ++s.args_parsed;
        }
    }
}

// VmRSS of a process in KiB; 0 when it is gone.
int64_t rss_kb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
    return 0;
}

// A gauge or counter of the server's /metrics (Prometheus text); -1 when unreadable.
double server_metric(uint16_t port, const std::string& name) {
    const int fd = connect_loopback(port, 30);
    if (fd < 0) return -1;
    std::string raw;
    if (send_all(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) {
        char buf[16384];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
            raw.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    const size_t at = raw.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::atof(raw.c_str() + at + name.size() + 2);
}

struct Child {
    pid_t pid = -1;
    uint16_t port = 0;
};

// Starts `argv` with stderr to `log` and waits (up to timeout) for the line naming its
// port.
Child spawn_server(const std::vector<std::string>& argv, const std::string& log,
                   std::chrono::seconds timeout) {
    Child c;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&c.pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        c.pid = -1;
        return c;
    }
    const std::regex listening(R"(on http://[^:]+:(\d+)\n)");
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
        const std::string text = cli::read_file(log).value_or("");
        std::smatch m;
        if (std::regex_search(text, m, listening)) {
            c.port = static_cast<uint16_t>(std::stoi(m[1]));
            break;
        }
        int status = 0;
        if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
            c.pid = -1;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return c;
}

void register_bench_soak(CLI::App& app, int& exit_code) {
    CLI::App* bench = bench_command(app);
    auto* cmd = bench->add_subcommand(
        "soak-serve",
        "`latent serve` as a child under a long mixed load (FIM, chat, streaming, JSON output, "
        "tool calls, dropped connections): status codes, crashes, RSS growth, latency per "
        "kind, and whether JSON answers and tool arguments parse.");
    struct Args {
        std::string model, server, backend = "cpu", log;
        int clients = 16, threads = 0;
        uint64_t prefix_cache_mb = 0;
        double seconds = 600;
    };
    auto a = std::make_shared<Args>();
    cmd->add_option("--model,-m", a->model, "GGUF model file")->required();
    cmd->add_option("--clients", a->clients, "Concurrent clients")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    cmd->add_option("--seconds", a->seconds, "Length of the run")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 86400.0));
    cmd->add_option("--server", a->server, "The latent binary to serve with (default: this one)");
    cmd->add_option("--backend", a->backend, "The server's backend")->capture_default_str();
    cmd->add_option("--threads", a->threads, "The server's CPU threads (0: all)")
        ->capture_default_str();
    cmd->add_option("--prefix-cache-mb", a->prefix_cache_mb,
                    "The server's prefix cache MiB (0: its default, a quarter of free memory, "
                    "which a long run fills: RSS then grows without a leak)")
        ->capture_default_str();
    cmd->add_option("--log", a->log, "The server's stderr (default: a file under /tmp)");
    cmd->callback([&exit_code, a] {
        const std::string exe = a->server.empty() ? cli::self_exe() : a->server;
        const std::string log =
            a->log.empty() ? "/tmp/latent-soak-serve-" + std::to_string(::getpid()) + ".log"
                           : a->log;
        std::vector<std::string> argv = {
            exe,      "serve", "-m",           a->model, "--backend", a->backend,
            "--port", "0",     "--disk-cache", "none",   "--threads", std::to_string(a->threads)};
        if (a->prefix_cache_mb > 0) {
            argv.push_back("--prefix-cache-mb");
            argv.push_back(std::to_string(a->prefix_cache_mb));
        }
        std::fprintf(stderr, "bench soak-serve: starting %s serve (log %s)\n", exe.c_str(),
                     log.c_str());
        const Child child = spawn_server(argv, log, std::chrono::seconds(300));
        if (child.pid < 0 || child.port == 0) {
            if (child.pid > 0) {
                ::kill(child.pid, SIGTERM);
                ::waitpid(child.pid, nullptr, 0);
            }
            exit_code = fail("the server did not start (see " + log + ")");
            return;
        }
        std::fprintf(stderr, "bench soak-serve: server %d on port %u; %d clients for %.0f s\n",
                     static_cast<int>(child.pid), static_cast<unsigned>(child.port), a->clients,
                     a->seconds);

        const int n_kinds = static_cast<int>(Kind::kCount);
        std::atomic<bool> stop{false};
        std::vector<std::vector<KindStats>> per_client(
            static_cast<size_t>(a->clients), std::vector<KindStats>(static_cast<size_t>(n_kinds)));
        std::vector<std::thread> clients;
        for (int c = 0; c < a->clients; ++c)
            clients.emplace_back([&, c] {
                std::mt19937 rng(static_cast<uint32_t>(1000 + c));
                for (uint32_t i = 0; !stop.load(); ++i) {
                    const int k = static_cast<int>((static_cast<uint32_t>(c) + i) % n_kinds);
                    run_one(child.port, static_cast<Kind>(k), rng(), rng,
                            per_client[static_cast<size_t>(c)][static_cast<size_t>(k)]);
                }
            });

        // The main thread samples RSS and watches the child.
        const auto t0 = Clock::now();
        const double warm_at = std::min(60.0, a->seconds * 0.1);
        int64_t rss_warm = 0, rss_end = 0, rss_max = 0;
        json rss_by_minute = json::array();    // MB at the end of each minute
        json cache_by_minute = json::array();  // the prefix cache's MB then
        // The prefix cache keeps every answer's pages until its budget (a quarter of free
        // memory by default) is full: RSS less the cache is what a leak would move.
        const std::string kCacheMetric = "latent_prefix_cache_bytes";
        double cache_warm = -1, cache_end = -1;
        double warm_s = 0;
        bool crashed = false;
        int child_status = 0;
        for (int tick = 1;; ++tick) {
            std::this_thread::sleep_until(t0 + std::chrono::seconds(tick));
            const double t = std::chrono::duration<double>(Clock::now() - t0).count();
            if (::waitpid(child.pid, &child_status, WNOHANG) == child.pid) {
                crashed = true;
                std::fprintf(stderr, "bench soak-serve: the server exited at %.0f s\n", t);
                break;
            }
            const int64_t rss = rss_kb(child.pid);
            rss_max = std::max(rss_max, rss);
            if (rss_warm == 0 && t >= warm_at) {
                rss_warm = rss, warm_s = t;
                cache_warm = server_metric(child.port, kCacheMetric);
            }
            rss_end = rss;
            if (tick % 60 == 0) {
                rss_by_minute.push_back(std::lround(rss / 1024.0));
                cache_by_minute.push_back(
                    std::lround(server_metric(child.port, kCacheMetric) / (1 << 20)));
            }
            if (tick % 30 == 0)
                std::fprintf(stderr, "bench soak-serve: %.0f s: RSS %.1f MB\n", t, rss / 1024.0);
            if (t >= a->seconds) break;
        }
        stop = true;
        for (auto& t : clients) t.join();
        // Once the last answers are in (dropped requests may still be cancelling).
        if (!crashed) {
            std::this_thread::sleep_for(std::chrono::seconds(1));
            rss_end = rss_kb(child.pid);
            cache_end = server_metric(child.port, kCacheMetric);
            if (::waitpid(child.pid, &child_status, WNOHANG) == child.pid) crashed = true;
        }
        int exit_status = -1;
        if (!crashed) {
            ::kill(child.pid, SIGTERM);
            ::waitpid(child.pid, &child_status, 0);
        }
        if (WIFEXITED(child_status)) exit_status = WEXITSTATUS(child_status);
        const int signal_no = WIFSIGNALED(child_status) ? WTERMSIG(child_status) : 0;

        KindStats all;
        json by_kind = json::object(), latency = json::object(), statuses = json::object();
        for (int k = 0; k < n_kinds; ++k) {
            KindStats s;
            for (const auto& pc : per_client) s.merge(pc[static_cast<size_t>(k)]);
            const std::string name = kind_name(static_cast<Kind>(k));
            by_kind[name] = s.requests;
            if (!s.ms.empty())
                latency[name] = {{"p50_ms", cli::pct(s.ms, 0.5)},
                                 {"p99_ms", cli::pct(s.ms, 0.99)},
                                 {"n", s.ms.size()}};
            all.merge(s);
        }
        uint64_t n5xx = 0;
        for (const auto& [st, n] : all.status) {
            statuses[std::to_string(st)] = n;
            if (st >= 500) n5xx += n;
        }
        json finish = json::object();
        for (const auto& [f, n] : all.finish) finish[f] = n;
        json out = {{"bench", "soak-serve"},
                    {"model", a->model},
                    {"backend", a->backend},
                    {"clients", a->clients},
                    {"seconds", a->seconds},
                    {"requests", all.requests},
                    {"requests_by_kind", by_kind},
                    {"ok_2xx", all.ok},
                    {"status_5xx", n5xx},
                    {"non_2xx_by_status", statuses},
                    {"connection_errors", all.conn_errors},
                    {"bad_bodies", all.bad_bodies},
                    {"crashed", crashed},
                    {"server_exit", exit_status},
                    {"server_signal", signal_no},
                    {"rss_warm_mb", rss_warm / 1024.0},
                    {"rss_warm_at_s", warm_s},
                    {"rss_end_mb", rss_end / 1024.0},
                    {"rss_max_mb", rss_max / 1024.0},
                    {"rss_mb_by_minute", rss_by_minute},
                    {"prefix_cache_budget_mb", a->prefix_cache_mb},
                    {"prefix_cache_mb_by_minute", cache_by_minute},
                    {"prefix_cache_warm_mb", cache_warm / (1 << 20)},
                    {"prefix_cache_end_mb", cache_end / (1 << 20)},
                    {"rss_less_cache_warm_mb", (rss_warm * 1024.0 - cache_warm) / (1 << 20)},
                    {"rss_less_cache_end_mb", (rss_end * 1024.0 - cache_end) / (1 << 20)},
                    {"rss_less_cache_end_over_warm",
                     cache_warm >= 0 && cache_end >= 0 && rss_warm * 1024.0 > cache_warm
                         ? (rss_end * 1024.0 - cache_end) / (rss_warm * 1024.0 - cache_warm)
                         : 0.0},
                    {"rss_end_over_warm", rss_warm > 0 ? double(rss_end) / double(rss_warm) : 0.0},
                    {"latency", latency},
                    {"finish_reasons", finish},
                    {"json_answers", all.json_answers},
                    {"json_parsed", all.json_parsed},
                    {"tool_answers_with_calls", all.with_calls},
                    {"tool_calls", all.calls},
                    {"tool_arguments_parsed", all.args_parsed},
                    {"tool_required_without_call", all.required_without_call}};
        std::printf("%s\n", out.dump().c_str());
        if (crashed) exit_code = 2;
    });
}

}  // namespace

void register_bench_soak_command(CLI::App& app, int& exit_code) {
    register_bench_soak(app, exit_code);
}

}  // namespace latent::agent
