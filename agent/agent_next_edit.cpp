// Agent::next_edit: latent/nextEdit put together — the edit history (NextEditState), the
// index-driven suggestions (next_edit_index.h) over the workspace's files and the open
// documents, and the model's rewrite of the region around the cursor (next_edit_model.h)
// when the index has nothing.
#include <map>

#include "agent/agent.h"
#include "agent/next_edit_index.h"
#include "agent/next_edit_model.h"
#include "agent/text_files.h"

namespace latent::agent {

namespace {

constexpr size_t kMaxReadBytes = 4u << 20;  // files larger than this are not searched

std::string hex(uint64_t v) {
    static const char* digits = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = digits[v & 15];
    return out;
}

}  // namespace

bool Agent::next_edit_feedback(const std::string& id, const std::string& action) {
    return next_edits_.feedback(id, action);
}

Outcome<NextEditResult> Agent::next_edit(const NextEditRequest& req, const Cancelled& cancelled) {
    const Settings s = settings();
    auto doc = docs_.get(req.uri);
    if (!doc) return FeatureError{FeatureError::Kind::kInvalid, "The document is not open."};
    NextEditResult result;
    result.version = doc->version;
    if (doc->version != req.version || !s.next_edit) return result;
    const PositionEncoding enc = docs_.encoding();
    const size_t cursor = to_offset(doc->text, req.position, enc);
    const std::string path = workspaces_.resolve(req.uri);

    // Texts as the user sees them: open documents by their real path, the disk else.
    std::map<std::string, std::string> open_uri;  // real path -> uri
    for (const auto& uri : docs_.uris())
        if (const std::string real = workspaces_.resolve(uri); !real.empty())
            open_uri.emplace(real, uri);
    std::map<std::string, std::optional<std::string>> texts;  // read once per request
    NextEditSources src;
    src.resolve = [this](const std::string& uri) { return workspaces_.resolve(uri); };
    src.read = [&](const std::string& p) -> std::optional<std::string> {
        auto it = texts.find(p);
        if (it != texts.end()) return it->second;
        std::optional<std::string> t;
        if (auto u = open_uri.find(p); u != open_uri.end()) {
            if (auto d = docs_.get(u->second)) t = std::move(d->text);
        } else if (workspaces_.index_for(p)) {  // inside a folder
            t = read_text_file(p, kMaxReadBytes);
        }
        return texts.emplace(p, std::move(t)).first->second;
    };
    src.files_using = [this](std::string_view name, size_t limit) {
        std::vector<std::string> out;
        for (const auto& ix : workspaces_.indexes())
            for (const auto& rel : ix->files_mentioning(name, limit))
                out.push_back(ix->root() + "/" + rel);
        return out;
    };
    src.defined_in = [this](std::string_view name) {
        std::vector<std::string> out;
        for (const auto& ix : workspaces_.indexes())
            for (const auto& hit : ix->definitions(std::string(name), 64))
                out.push_back(ix->root() + "/" + hit.path);
        return out;
    };

    if (!path.empty()) {
        auto found = index_next_edits(next_edits_.hunks(), {path, cursor}, next_edits_.now(), src);
        if (found) {
            std::string group = "index:" + found->kind + ":" + found->old_name;
            if (found->kind == "rename")
                group += ":" + found->new_name;
            else
                group += ":" + hex(text_hash(found->label));
            if (!next_edits_.dismissed(group)) {
                for (const auto& e : found->edits) {
                    // The text the edit was found in (read once above; not copied again).
                    const auto it = texts.find(e.path);
                    if (it == texts.end() || !it->second) continue;
                    const std::string* t = &*it->second;
                    NextEditItem item;
                    // Named by its place (file, line, column), not its rank in this
                    // answer: accepting one leaves the others' ids as they were, so the
                    // client counts each suggestion shown once.
                    const size_t nl =
                        e.start == 0 ? std::string::npos : t->rfind('\n', e.start - 1);
                    const size_t col = nl == std::string::npos ? e.start : e.start - nl - 1;
                    item.id = group + "#" + hex(text_hash(e.path)).substr(0, 8) + ":" +
                              std::to_string(e.line) + ":" + std::to_string(col);
                    auto u = open_uri.find(e.path);
                    item.uri = u != open_uri.end() ? u->second : path_to_uri(e.path);
                    item.range = {to_position(*t, e.start, enc), to_position(*t, e.end, enc)};
                    item.new_text = e.new_text;
                    item.reason = "index";
                    item.kind = found->kind;
                    item.label = found->label;
                    result.items.push_back(std::move(item));
                }
                if (!result.items.empty()) {
                    next_edits_.answered("index");
                    return result;
                }
            }
        }
    }
    if (!req.model || !s.next_edit_model) return result;
    if (cancelled && cancelled()) return FeatureError{FeatureError::Kind::kCancelled, "cancelled"};
    auto items = model_next_edit(*doc, cursor, path, s, cancelled);
    if (!items) return items.error;
    result.items = std::move(*items.value);
    if (!result.items.empty()) next_edits_.answered("model");
    return result;
}

Outcome<std::vector<NextEditItem>> Agent::model_next_edit(const Document& doc, size_t cursor,
                                                          const std::string& path,
                                                          const Settings& s,
                                                          const Cancelled& cancelled) {
    std::vector<NextEditItem> out;
    auto backend = generators_.current().backend;
    if (!backend) return out;  // nothing loaded (yet): no suggestion, not an error
    const auto hunks = next_edits_.hunks();
    if (hunks.empty()) return out;  // the model follows edits: none yet

    NextEditModelInput in;
    in.path = path.empty() ? uri_to_path(doc.uri) : workspaces_.shown_path(path);
    in.text = doc.text;
    in.cursor = cursor;
    in.region_lines = static_cast<uint32_t>(s.next_edit_region_lines);
    const EditHunk* last = nullptr;
    for (const auto& h : hunks) {
        const std::string real = workspaces_.resolve(h.uri);
        const std::string shown = real.empty() ? uri_to_path(h.uri) : workspaces_.shown_path(real);
        in.history.emplace_back(shown, h);
        if (h.uri == doc.uri) last = &h;
    }
    const uint32_t line = to_position(doc.text, cursor, PositionEncoding::kUtf8).line;
    if (!path.empty())
        if (auto ix = workspaces_.index_for(path))
            in.definitions = ix->context_for(path, line, 0, 1024);
    // Other places the user worked on lately, a few lines each.
    std::vector<Touched> touched;
    {
        std::lock_guard<std::mutex> lock(mu_);
        touched.assign(touched_.begin(), touched_.end());
    }
    for (const auto& t : touched) {
        if (t.uri == doc.uri || in.recent.size() >= 3) continue;
        auto other = docs_.get(t.uri);
        if (!other) continue;
        const uint32_t a = t.first > 5 ? t.first - 5 : 0, e = t.last + 5;
        const size_t from = to_offset(other->text, {a, 0}, PositionEncoding::kUtf8);
        const size_t to = to_offset(other->text, {e + 1, 0}, PositionEncoding::kUtf8);
        const std::string real = workspaces_.resolve(t.uri);
        in.recent.push_back({real.empty() ? uri_to_path(t.uri) : workspaces_.shown_path(real), a, e,
                             other->text.substr(from, to - from)});
    }

    const NextEditPrompt prompt = build_next_edit_prompt(in);
    GenerateOptions opts;
    opts.max_tokens = prompt.max_tokens;
    opts.temperature = 0.0f;
    opts.owner = "next-edit:" + doc.uri;
    opts.cancelled = cancelled;
    auto r = backend->chat(prompt.messages, opts);
    if (!r) return FeatureError{FeatureError::Kind::kFailed, r.error().message};
    if (r->cancelled || (cancelled && cancelled()))
        return FeatureError{FeatureError::Kind::kCancelled, "cancelled"};
    std::string why;
    const auto edits = parse_next_edit_answer(prompt, doc.text, r->text, last, &why);
    if (edits.empty()) {
        log("nextEdit: the model's answer was dropped: " + why);
        return out;
    }
    // Named by its content: the same rewrite offered again is the same group.
    std::string content = doc.uri;
    for (const auto& e : edits) content += "\n" + std::to_string(e.start) + ":" + e.new_text;
    const std::string group = "model:" + hex(text_hash(content));
    if (next_edits_.dismissed(group)) return out;
    const PositionEncoding enc = docs_.encoding();
    size_t n = 0;
    for (const auto& e : edits) {
        NextEditItem item;
        item.id = group + "#" + std::to_string(n++);
        item.uri = doc.uri;
        item.range = {to_position(doc.text, e.start, enc), to_position(doc.text, e.end, enc)};
        item.new_text = e.new_text;
        item.reason = "model";
        item.kind = "rewrite";
        item.label = "Suggested edit";
        out.push_back(std::move(item));
    }
    return out;
}

}  // namespace latent::agent
