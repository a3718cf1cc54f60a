// JsonMatcher (see json_matcher.h): a pushdown matcher with a few readings at once.
//
// Frame fields by kind (Frame in json_matcher.h):
//   kRoot        phase: kValue (no value yet) | kDone.
//   kObject      phase: kOpen..kComma; a = bytes of the key matched (kKey); b = next
//                property that may come; c = the property being written; m = the
//                properties whose key still matches (kKey).
//   kFreeObject  phase as kObject (kKey: a key string frame is above it).
//   kArray       phase: kOpen | kValue | kAfter | kComma; a = items done (saturating).
//   kString      phase: kPlain | kEscape | kHex0..kHex3; a = \u value so far; d = UTF-8
//                continuation bytes still due, b = the range of the next one (lo | hi << 8);
//                e = 1 after a high surrogate (a \uDC00-\uDFFF must follow).
//   kNumber      phase: NumPhase; a = digits in the current part.
//   kLiteral     a = bytes matched; [b, c) = the literals (sorted) that still match.
// Strings, objects and arrays end on their closing byte. Numbers, and literals that a
// longer literal could extend, end lazily: when a byte cannot continue them, they pop and
// the byte goes to the value around them.
#include "engine/json_matcher.h"

#include <algorithm>
#include <cstring>

namespace latent::engine {

using Kind = JsonGrammar::Kind;
using Node = JsonGrammar::Node;
using Frame = JsonMatcher::Frame;

namespace {

enum FrameKind : uint8_t { kRoot, kObject, kFreeObject, kArray, kString, kNumber, kLiteral };
enum RootPhase : uint8_t { kRootValue, kRootDone };
// Objects (declared and free) and arrays (kOpen, kValue, kAfter, kComma only).
enum ContainerPhase : uint8_t { kOpen, kKey, kColon, kValue, kAfter, kComma };
enum StringPhase : uint8_t { kPlain, kEscape, kHex0, kHex1, kHex2, kHex3 };
enum NumPhase : uint8_t { kMinus, kZero, kInt, kDot, kFrac, kExp, kExpSign, kExpDigits };

bool is_ws(uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// A value of `node` may open at stack index `depth` only if its shortest value fits under
// the nesting cap from there: then a completion always exists.
bool fits(const JsonGrammar& g, int depth, uint32_t node) {
    return uint32_t(depth) + g.node(node).fin_depth <= uint32_t(JsonMatcher::kMaxStack);
}

// The properties that may come next at `next` in an object whose frame sits below stack
// index `depth`: from `next` up to the first required one (which may not be skipped).
uint64_t key_candidates(const JsonGrammar& g, const Node& n, uint32_t next, int depth) {
    uint64_t m = 0;
    const uint32_t size = uint32_t(n.props.size());
    const uint32_t last = n.first_required[std::min(next, size)];
    for (uint32_t p = next; p < size && p <= last; ++p) {
        if (fits(g, depth, n.props[p].node)) m |= uint64_t(1) << p;
    }
    return m;
}

bool literal_complete(const Node& n, const Frame& f) { return n.literals[f.b].size() == f.a; }

bool scalar_complete(const JsonGrammar& g, const Frame& f) {
    if (f.kind == kNumber)
        return f.phase == kZero || f.phase == kInt || f.phase == kFrac || f.phase == kExpDigits;
    if (f.kind == kLiteral) return literal_complete(g.node(f.node), f);
    return false;
}

struct Stack {
    std::array<Frame, JsonMatcher::kMaxStack> f;
    int depth = 0;
    uint8_t ws = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Stepping
// ---------------------------------------------------------------------------------------

struct JsonStepper {
    const JsonGrammar& g;
    JsonMatcher::State& out;

    void load(const JsonMatcher::State& in, int alt, Stack& s) const {
        const auto& a = in.alts_[size_t(alt)];
        s.depth = a.depth;
        s.ws = a.ws;
        std::memcpy(s.f.data(), &in.frames_[a.begin], sizeof(Frame) * a.depth);
    }

    // Appends a reading, unless an equal one is there or the state is full (dropping a
    // reading only narrows what is accepted; every kept one can still complete).
    void emit(const Stack& s) {
        if (out.n_alts_ >= JsonMatcher::kMaxAlternatives ||
            out.n_frames_ + s.depth > JsonMatcher::kMaxFrames)
            return;
        for (int i = 0; i < out.n_alts_; ++i) {
            const auto& a = out.alts_[size_t(i)];
            if (a.depth == s.depth && a.ws == s.ws &&
                std::memcmp(&out.frames_[a.begin], s.f.data(), sizeof(Frame) * s.depth) == 0)
                return;
        }
        auto& a = out.alts_[out.n_alts_++];
        a.begin = out.n_frames_;
        a.depth = uint8_t(s.depth);
        a.ws = s.ws;
        std::memcpy(&out.frames_[a.begin], s.f.data(), sizeof(Frame) * s.depth);
        out.n_frames_ = uint16_t(out.n_frames_ + s.depth);
    }

    void accept(Stack& s) {
        s.ws = 0;
        emit(s);
    }

    void accept_ws(Stack& s) {
        if (s.ws >= JsonMatcher::kMaxWhitespace) return;
        ++s.ws;
        emit(s);
    }

    // The top value is complete: pop it and move its parent past it.
    static void complete_top(Stack& s) {
        --s.depth;
        Frame& p = s.f[size_t(s.depth - 1)];
        switch (p.kind) {
            case kRoot:
                p.phase = kRootDone;
                break;
            case kObject:
                p.phase = kAfter;
                p.b = uint16_t(p.c + 1);
                break;
            case kFreeObject:
                p.phase = p.phase == kKey ? kColon : kAfter;
                break;
            case kArray:
                p.phase = kAfter;
                if (p.a < UINT16_MAX) ++p.a;
                break;
            default:
                break;  // scalars hold no children
        }
    }

    void push_string(Stack& s, uint32_t node) {
        Frame f;
        f.node = node;
        f.kind = kString;
        f.phase = kPlain;
        s.f[size_t(s.depth++)] = f;
    }

    // Opens a value of concrete `node` with its first byte c (in node.first).
    void push(Stack& s, uint32_t node, uint8_t c) {
        const Node& n = g.node(node);
        Frame f;
        f.node = node;
        switch (n.kind) {
            case Kind::kObject:
                f.kind = kObject;
                f.phase = kOpen;
                break;
            case Kind::kFreeObject:
                f.kind = kFreeObject;
                f.phase = kOpen;
                break;
            case Kind::kArray:
                f.kind = kArray;
                f.phase = kOpen;
                break;
            case Kind::kString:
                f.kind = kString;
                f.phase = kPlain;
                break;
            case Kind::kNumber:
            case Kind::kInteger:
                f.kind = kNumber;
                f.phase = c == '-' ? kMinus : c == '0' ? kZero : kInt;
                f.a = f.phase == kInt ? 1 : 0;
                break;
            case Kind::kLiteral: {
                f.kind = kLiteral;
                f.b = 0;
                f.c = uint16_t(n.literals.size());
                if (!narrow(n, f, c)) return;
                s.f[size_t(s.depth++)] = f;
                if (f.c - f.b == 1 && literal_complete(n, f)) complete_top(s);
                accept(s);
                return;
            }
            case Kind::kAnyOf:
                return;  // never: anyOf is expanded by start_value
        }
        s.f[size_t(s.depth++)] = f;
        accept(s);
    }

    // Literals [b, c) share their first a bytes; keeps those whose next byte is c.
    static bool narrow(const Node& n, Frame& f, uint8_t c) {
        const size_t pos = f.a;
        auto key = [&](const std::string& t) { return t.size() > pos ? int(uint8_t(t[pos])) : -1; };
        const auto begin = n.literals.begin() + f.b, end = n.literals.begin() + f.c;
        const auto lo =
            std::partition_point(begin, end, [&](const std::string& t) { return key(t) < int(c); });
        const auto hi =
            std::partition_point(lo, end, [&](const std::string& t) { return key(t) <= int(c); });
        if (lo == hi) return false;
        f.b = uint16_t(lo - n.literals.begin());
        f.c = uint16_t(hi - n.literals.begin());
        f.a = uint16_t(pos + 1);
        return true;
    }

    // A value of `node` (any kind) starts with byte c, its frame at index s.depth.
    void start_value(Stack& s, uint32_t node, uint8_t c) {
        const Node& n = g.node(node);
        if (!n.first[c]) return;
        if (n.kind != Kind::kAnyOf) {
            if (fits(g, s.depth, node)) push(s, node, c);
            return;
        }
        int last = -1;
        for (size_t i = 0; i < n.alts.size(); ++i) {
            if (g.node(n.alts[i]).first[c] && fits(g, s.depth, n.alts[i])) last = int(i);
        }
        for (int i = 0; i <= last; ++i) {
            const uint32_t a = n.alts[size_t(i)];
            if (!g.node(a).first[c] || !fits(g, s.depth, a)) continue;
            if (i == last) {
                push(s, a, c);
            } else {
                Stack copy = s;
                push(copy, a, c);
            }
        }
    }

    void feed(Stack& s, uint8_t c) {
        for (;;) {
            Frame& f = s.f[size_t(s.depth - 1)];
            switch (f.kind) {
                case kRoot:
                    if (is_ws(c)) return accept_ws(s);
                    if (f.phase == kRootValue) start_value(s, g.root(), c);
                    return;
                case kObject:
                    return object(s, f, c);
                case kFreeObject:
                    return free_object(s, f, c);
                case kArray:
                    return array(s, f, c);
                case kString:
                    return string(s, f, c);
                case kNumber:
                    if (number(s, f, c)) return;
                    break;  // complete and popped: c belongs to the parent
                case kLiteral:
                    if (literal(s, f, c)) return;
                    break;
                default:
                    return;
            }
        }
    }

    void object(Stack& s, Frame& f, uint8_t c) {
        const Node& n = g.node(f.node);
        const uint32_t size = uint32_t(n.props.size());
        if (f.phase != kKey && is_ws(c)) return accept_ws(s);
        switch (f.phase) {
            case kOpen:
            case kComma:
                if (c == '"') {
                    const uint32_t next = f.phase == kOpen ? 0 : f.b;
                    const uint64_t m = key_candidates(g, n, next, s.depth);
                    if (!m) return;
                    f.phase = kKey;
                    f.m = m;
                    f.a = 1;
                    return accept(s);
                }
                if (c == '}' && f.phase == kOpen && n.first_required[0] == size) {
                    complete_top(s);
                    return accept(s);
                }
                return;
            case kKey: {
                uint64_t m = 0;
                uint32_t done = UINT32_MAX;
                for (uint64_t bits = f.m; bits; bits &= bits - 1) {
                    const uint32_t p = uint32_t(__builtin_ctzll(bits));
                    const std::string& k = n.props[p].key_json;
                    if (k.size() > f.a && uint8_t(k[f.a]) == c) {
                        m |= uint64_t(1) << p;
                        if (k.size() == size_t(f.a) + 1) done = p;
                    }
                }
                if (!m) return;
                f.m = m;
                ++f.a;
                // Keys end at their only unescaped quote, so a finished key is the one
                // left: no other key has it as a prefix.
                if (done != UINT32_MAX) {
                    f.phase = kColon;
                    f.c = uint16_t(done);
                    f.m = 0;
                    f.a = 0;
                }
                return accept(s);
            }
            case kColon:
                if (c != ':') return;
                f.phase = kValue;
                return accept(s);
            case kValue:
                return start_value(s, n.props[f.c].node, c);
            case kAfter:
                if (c == ',' && key_candidates(g, n, f.b, s.depth)) {
                    f.phase = kComma;
                    return accept(s);
                }
                if (c == '}' && n.first_required[std::min<uint32_t>(f.b, size)] == size) {
                    complete_top(s);
                    return accept(s);
                }
                return;
            default:
                return;
        }
    }

    void free_object(Stack& s, Frame& f, uint8_t c) {
        const Node& n = g.node(f.node);
        if (is_ws(c)) return accept_ws(s);
        // A key opens only if a string, and then the value, fit under the nesting cap.
        const bool room = s.depth + 1 <= JsonMatcher::kMaxStack && fits(g, s.depth, n.items);
        switch (f.phase) {
            case kOpen:
            case kComma:
                if (c == '"' && room) {
                    f.phase = kKey;
                    push_string(s, f.node);
                    return accept(s);
                }
                if (c == '}' && f.phase == kOpen) {
                    complete_top(s);
                    return accept(s);
                }
                return;
            case kColon:
                if (c != ':') return;
                f.phase = kValue;
                return accept(s);
            case kValue:
                return start_value(s, n.items, c);
            case kAfter:
                if (c == ',' && room) {
                    f.phase = kComma;
                    return accept(s);
                }
                if (c == '}') {
                    complete_top(s);
                    return accept(s);
                }
                return;
            default:
                return;
        }
    }

    void array(Stack& s, Frame& f, uint8_t c) {
        const Node& n = g.node(f.node);
        if (is_ws(c)) return accept_ws(s);
        // Items written so far saturate at 65535; beyond that any maxItems above counts as
        // not reached.
        const bool below_max = f.a < n.max_items || (f.a == UINT16_MAX && n.max_items > UINT16_MAX);
        switch (f.phase) {
            case kOpen:
                if (c == ']') {
                    if (n.min_items > 0) return;
                    complete_top(s);
                    return accept(s);
                }
                if (n.max_items == 0) return;
                f.phase = kValue;
                return start_value(s, n.items, c);
            case kAfter:
                if (c == ',' && below_max && fits(g, s.depth, n.items)) {
                    f.phase = kComma;
                    return accept(s);
                }
                if (c == ']' && f.a >= n.min_items) {
                    complete_top(s);
                    return accept(s);
                }
                return;
            case kComma:
                f.phase = kValue;
                return start_value(s, n.items, c);
            default:
                return;
        }
    }

    void string(Stack& s, Frame& f, uint8_t c) {
        if (f.d > 0) {  // inside a UTF-8 sequence
            if (c < (f.b & 0xFF) || c > (f.b >> 8)) return;
            --f.d;
            f.b = 0x80 | (0xBF << 8);
            return accept(s);
        }
        switch (f.phase) {
            case kPlain:
                if (f.e) {  // after a high surrogate only its low half may come
                    if (c != '\\') return;
                    f.phase = kEscape;
                    return accept(s);
                }
                if (c == '"') {
                    complete_top(s);
                    return accept(s);
                }
                if (c == '\\') {
                    f.phase = kEscape;
                    return accept(s);
                }
                if (c < 0x20) return;  // raw control characters must be escaped
                if (c < 0x80) return accept(s);
                // UTF-8 lead bytes (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF.
                {
                    uint8_t need = 0, lo = 0x80, hi = 0xBF;
                    if (c >= 0xC2 && c <= 0xDF) {
                        need = 1;
                    } else if (c == 0xE0) {
                        need = 2, lo = 0xA0;
                    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
                        need = 2;
                    } else if (c == 0xED) {
                        need = 2, hi = 0x9F;
                    } else if (c == 0xF0) {
                        need = 3, lo = 0x90;
                    } else if (c >= 0xF1 && c <= 0xF3) {
                        need = 3;
                    } else if (c == 0xF4) {
                        need = 3, hi = 0x8F;
                    } else {
                        return;
                    }
                    f.d = need;
                    f.b = uint16_t(lo | (hi << 8));
                    return accept(s);
                }
            case kEscape:
                if (c == 'u') {
                    f.phase = kHex0;
                    f.a = 0;
                    return accept(s);
                }
                if (f.e) return;
                if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                    c == 'r' || c == 't') {
                    f.phase = kPlain;
                    return accept(s);
                }
                return;
            default: {  // kHex0..kHex3
                const int k = f.phase - kHex0;
                const int v = hex_value(c);
                if (v < 0) return;
                if (f.e) {  // the low surrogate DC00-DFFF
                    if (k == 0 && v != 0xD) return;
                    if (k == 1 && v < 0xC) return;
                } else if (k == 1 && f.a == 0xD && v >= 0xC) {
                    return;  // a low surrogate with no high one before it
                }
                f.a = uint16_t((f.a << 4) | v);
                if (k < 3) {
                    ++f.phase;
                    return accept(s);
                }
                f.phase = kPlain;
                if (f.e)
                    f.e = 0;
                else if (f.a >= 0xD800 && f.a <= 0xDBFF)
                    f.e = 1;
                f.a = 0;
                return accept(s);
            }
        }
    }

    // true: handled (accepted or refused); false: the number was complete and is popped.
    bool number(Stack& s, Frame& f, uint8_t c) {
        const bool integer = g.node(f.node).kind == Kind::kInteger;
        const bool digit = is_digit(c);
        auto go = [&](uint8_t phase, uint16_t a) {
            f.phase = phase;
            f.a = a;
            accept(s);
            return true;
        };
        switch (f.phase) {
            case kMinus:
                if (c == '0') return go(kZero, 0);
                if (digit) return go(kInt, 1);
                return true;
            case kZero:
            case kInt:
                if (digit && f.phase == kInt && f.a < JsonMatcher::kMaxIntDigits)
                    return go(kInt, uint16_t(f.a + 1));
                if (!integer && c == '.') return go(kDot, 0);
                if (!integer && (c == 'e' || c == 'E')) return go(kExp, 0);
                break;
            case kDot:
                if (digit) return go(kFrac, 1);
                return true;
            case kFrac:
                if (digit && f.a < JsonMatcher::kMaxFracDigits) return go(kFrac, uint16_t(f.a + 1));
                if (c == 'e' || c == 'E') return go(kExp, 0);
                break;
            case kExp:
                if (c == '+' || c == '-') return go(kExpSign, 0);
                if (digit) return go(kExpDigits, 1);
                return true;
            case kExpSign:
                if (digit) return go(kExpDigits, 1);
                return true;
            case kExpDigits:
                if (digit && f.a < JsonMatcher::kMaxExpDigits)
                    return go(kExpDigits, uint16_t(f.a + 1));
                break;
            default:
                return true;
        }
        complete_top(s);  // complete: the byte belongs to what follows the number
        return false;
    }

    bool literal(Stack& s, Frame& f, uint8_t c) {
        const Node& n = g.node(f.node);
        Frame next = f;
        if (narrow(n, next, c)) {
            f = next;
            if (f.c - f.b == 1 && literal_complete(n, f)) complete_top(s);
            accept(s);
            return true;
        }
        if (!literal_complete(n, f)) return true;
        complete_top(s);
        return false;
    }
};

// ---------------------------------------------------------------------------------------
// Completion
// ---------------------------------------------------------------------------------------

namespace {

// Counts bytes (Text = false) or writes them (Text = true).
template <bool Text>
struct Sink {
    const JsonGrammar& g;
    std::string* out = nullptr;
    uint64_t len = 0;

    void ch(char c) {
        ++len;
        if constexpr (Text) *out += c;
    }
    void str(std::string_view v) {
        len += v.size();
        if constexpr (Text) *out += v;
    }
    void fin(uint32_t node) {
        len += g.node(node).fin_len;
        if constexpr (Text) g.append_fin(node, *out);
    }
    // Closes an object once properties before i are written and at least one is.
    void tail(const Node& n, uint32_t i) {
        if constexpr (!Text) {
            len += n.tail_len[std::min<size_t>(i, n.props.size())];
        } else {
            for (size_t p = i; p < n.props.size(); ++p) {
                if (!n.props[p].required) continue;
                ch(',');
                str(n.props[p].key_json);
                ch(':');
                fin(n.props[p].node);
            }
            ch('}');
        }
    }
    void items(uint32_t node, uint32_t count) {
        for (uint32_t i = 0; i < count; ++i) {
            ch(',');
            fin(node);
        }
    }
};

uint64_t property_cost(const Node& n, const JsonGrammar& g, uint32_t p, size_t key_done) {
    return n.props[p].key_json.size() - key_done + 1 + g.node(n.props[p].node).fin_len +
           n.tail_len[p + 1];
}

template <bool Text>
void finish_frame(const JsonGrammar& g, const Frame& f, int index, bool top, Sink<Text>& k) {
    switch (f.kind) {
        case kRoot:
            if (top && f.phase == kRootValue) k.fin(g.root());
            return;
        case kObject: {
            const Node& n = g.node(f.node);
            const uint32_t size = uint32_t(n.props.size());
            auto write = [&](uint32_t p, size_t key_done) {
                k.str(std::string_view(n.props[p].key_json).substr(key_done));
                k.ch(':');
                k.fin(n.props[p].node);
                k.tail(n, p + 1);
            };
            auto cheapest = [&](uint64_t m, size_t key_done) {
                uint32_t best = 0;
                uint64_t best_cost = UINT64_MAX;
                for (; m; m &= m - 1) {
                    const uint32_t p = uint32_t(__builtin_ctzll(m));
                    const uint64_t cost = property_cost(n, g, p, key_done);
                    if (cost < best_cost) best_cost = cost, best = p;
                }
                return best;
            };
            switch (f.phase) {
                case kOpen:
                    if (n.first_required[0] == size)
                        k.ch('}');
                    else
                        write(n.first_required[0], 0);
                    return;
                case kKey:
                    return write(cheapest(f.m, f.a), f.a);
                case kColon:
                    k.ch(':');
                    k.fin(n.props[f.c].node);
                    return k.tail(n, f.c + 1u);
                case kValue:
                    if (top) k.fin(n.props[f.c].node);
                    return k.tail(n, f.c + 1u);
                case kAfter:
                    return k.tail(n, f.b);
                case kComma:
                    return write(cheapest(key_candidates(g, n, f.b, index + 1), 0), 0);
                default:
                    return;
            }
        }
        case kFreeObject: {
            const Node& n = g.node(f.node);
            switch (f.phase) {
                case kOpen:
                case kAfter:
                    return k.ch('}');
                case kKey:
                case kColon:
                    k.ch(':');
                    k.fin(n.items);
                    return k.ch('}');
                case kValue:
                    if (top) k.fin(n.items);
                    return k.ch('}');
                case kComma:
                    k.str("\"\":");
                    k.fin(n.items);
                    return k.ch('}');
                default:
                    return;
            }
        }
        case kArray: {
            const Node& n = g.node(f.node);
            const uint32_t done = f.a;
            auto left = [&](uint32_t have) { return n.min_items > have ? n.min_items - have : 0; };
            switch (f.phase) {
                case kOpen:
                    if (n.min_items > 0) {
                        k.fin(n.items);
                        k.items(n.items, n.min_items - 1);
                    }
                    return k.ch(']');
                case kValue:
                    if (top) k.fin(n.items);
                    k.items(n.items, left(done + 1));
                    return k.ch(']');
                case kAfter:
                    k.items(n.items, left(done));
                    return k.ch(']');
                case kComma:
                    k.fin(n.items);
                    k.items(n.items, left(done + 1));
                    return k.ch(']');
                default:
                    return;
            }
        }
        case kString: {
            if (f.d > 0) {
                k.ch(char(f.b & 0xFF));
                for (int i = 1; i < f.d; ++i) k.ch(char(0x80));
            }
            bool pair = f.e;  // a low surrogate is due
            if (f.phase == kEscape) {
                if (pair) {
                    k.str("uDC00");
                    pair = false;
                } else {
                    k.ch('"');  // \" : an escaped quote ends the escape
                }
            } else if (f.phase >= kHex0) {
                const int have = f.phase - kHex0;
                uint32_t v = f.a;
                for (int i = have; i < 4; ++i) {
                    const int digit = pair ? (i == 0 ? 0xD : i == 1 ? 0xC : 0) : 0;
                    k.ch("0123456789ABCDEF"[digit]);
                    v = (v << 4) | uint32_t(digit);
                }
                pair = !pair && v >= 0xD800 && v <= 0xDBFF;
            }
            if (pair) k.str("\\uDC00");
            return k.ch('"');
        }
        case kNumber:
            if (f.phase == kMinus || f.phase == kDot || f.phase == kExp || f.phase == kExpSign)
                k.ch('0');
            return;
        case kLiteral: {
            const Node& n = g.node(f.node);
            size_t best = f.b;
            for (size_t i = f.b; i < f.c; ++i)
                if (n.literals[i].size() < n.literals[best].size()) best = i;
            return k.str(std::string_view(n.literals[best]).substr(f.a));
        }
        default:
            return;
    }
}

template <bool Text>
void finish(const JsonGrammar& g, const Frame* frames, int depth, Sink<Text>& k) {
    for (int i = depth - 1; i >= 0; --i) finish_frame(g, frames[i], i, i == depth - 1, k);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// State and JsonMatcher
// ---------------------------------------------------------------------------------------

JsonMatcher::State& JsonMatcher::State::operator=(const State& o) {
    if (this == &o) return *this;
    n_frames_ = o.n_frames_;
    n_alts_ = o.n_alts_;
    std::memcpy(alts_.data(), o.alts_.data(), sizeof(Alt) * n_alts_);
    std::memcpy(frames_.data(), o.frames_.data(), sizeof(Frame) * n_frames_);
    return *this;
}

bool JsonMatcher::State::in_plain_string() const {
    if (n_alts_ == 0) return false;
    for (int i = 0; i < n_alts_; ++i) {
        const Alt& a = alts_[size_t(i)];
        const Frame& f = frames_[size_t(a.begin + a.depth - 1)];
        if (f.kind != kString || f.phase != kPlain || f.d != 0 || f.e != 0) return false;
    }
    return true;
}

void JsonMatcher::State::append_key(std::string& out) const {
    out += char(n_alts_);
    for (int i = 0; i < n_alts_; ++i) {
        const Alt& a = alts_[size_t(i)];
        out += char(a.depth);
        out += char(a.ws);
        out.append(reinterpret_cast<const char*>(&frames_[a.begin]), sizeof(Frame) * a.depth);
    }
}

JsonMatcher::JsonMatcher(std::shared_ptr<const JsonGrammar> grammar)
    : grammar_(std::move(grammar)) {
    state_.n_alts_ = 1;
    state_.n_frames_ = 1;
    state_.alts_[0] = State::Alt{0, 1, 0};
    Frame root;
    root.node = grammar_->root();
    root.kind = kRoot;
    root.phase = kRootValue;
    state_.frames_[0] = root;
}

bool JsonMatcher::step(const JsonGrammar& g, const State& in, uint8_t byte, State& out) {
    out.n_alts_ = 0;
    out.n_frames_ = 0;
    JsonStepper st{g, out};
    Stack s;
    for (int i = 0; i < in.n_alts_; ++i) {
        st.load(in, i, s);
        st.feed(s, byte);
    }
    return out.n_alts_ > 0;
}

bool JsonMatcher::feed(uint8_t byte) {
    if (!step(*grammar_, state_, byte, scratch_)) return false;
    state_ = scratch_;
    return true;
}

bool JsonMatcher::feed(std::string_view bytes) {
    State cur = state_;
    for (char c : bytes) {
        if (!step(*grammar_, cur, uint8_t(c), scratch_)) return false;
        cur = scratch_;
    }
    state_ = cur;
    return true;
}

bool JsonMatcher::accepts(std::string_view bytes) const {
    State cur = state_, next;
    for (char c : bytes) {
        if (!step(*grammar_, cur, uint8_t(c), next)) return false;
        cur = next;
    }
    return true;
}

bool JsonMatcher::is_complete(const JsonGrammar& g, const State& s) {
    for (int i = 0; i < s.n_alts_; ++i) {
        const auto& a = s.alts_[size_t(i)];
        const Frame* f = &s.frames_[a.begin];
        if (a.depth == 1 && f[0].phase == kRootDone) return true;
        // A number or literal at the top level ends with the document.
        if (a.depth == 2 && scalar_complete(g, f[1])) return true;
    }
    return false;
}

bool JsonMatcher::is_closed(const State& s) {
    if (s.n_alts_ == 0) return false;
    for (int i = 0; i < s.n_alts_; ++i) {
        const auto& a = s.alts_[size_t(i)];
        if (a.depth != 1 || s.frames_[a.begin].phase != kRootDone) return false;
    }
    return true;
}

bool JsonMatcher::is_complete() const { return is_complete(*grammar_, state_); }

bool JsonMatcher::is_closed() const { return is_closed(state_); }

uint32_t JsonMatcher::completion_length(const JsonGrammar& g, const State& s) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < s.n_alts_; ++i) {
        const auto& a = s.alts_[size_t(i)];
        Sink<false> k{g};
        finish(g, &s.frames_[a.begin], a.depth, k);
        best = std::min(best, k.len);
    }
    return uint32_t(std::min<uint64_t>(best, UINT32_MAX));
}

uint32_t JsonMatcher::completion_length() const { return completion_length(*grammar_, state_); }

std::string JsonMatcher::shortest_completion() const {
    int best = -1;
    uint64_t best_len = UINT64_MAX;
    for (int i = 0; i < state_.n_alts_; ++i) {
        const auto& a = state_.alts_[size_t(i)];
        Sink<false> k{*grammar_};
        finish(*grammar_, &state_.frames_[a.begin], a.depth, k);
        if (k.len < best_len) best_len = k.len, best = i;
    }
    std::string out;
    if (best < 0) return out;
    const auto& a = state_.alts_[size_t(best)];
    Sink<true> k{*grammar_, &out};
    finish(*grammar_, &state_.frames_[a.begin], a.depth, k);
    return out;
}

}  // namespace latent::engine
