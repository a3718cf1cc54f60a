// Tokenizer implementation: tables built once by create(), PCRE2 (JIT) for the
// pre-tokenizer regexes, a heap-driven BPE over token ids, a per-thread cache of BPE
// results. Not a general tokenizer library: byte-level BPE with DeepSeek's pre-types only.
#include "engine/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <utility>

namespace latent::engine {
namespace {

// Ids are int32 and every token costs a few hundred bytes of tables; real vocabs are
// ~130k. The caps keep a hostile GGUF from making create() allocate without bound.
constexpr size_t kMaxTokens = size_t{1} << 24;
constexpr size_t kMaxMerges = size_t{1} << 24;

// Per-thread BPE cache: pieces longer than this rarely repeat (long runs of one class of
// characters), and the entry cap bounds the memory each thread keeps.
constexpr size_t kMaxCachedPieceBytes = 256;
constexpr size_t kMaxCacheEntries = size_t{1} << 16;
constexpr size_t kMaxCachedIds = size_t{1} << 20;

// ---------------------------------------------------------------------------------------
// Pre-tokenizer regexes, ENGINE_SPEC §4.1, written with \u escapes so that no editor's
// Unicode normalization can change them (the deepseek-llm class holds U+2126 Ω and
// U+212A K, which NFC would fold into U+03A9 and 'K').

// deepseek-v3 (DeepSeek-V3/R1 tokenizer.json Split patterns):
//   \p{N}{1,3}
//   [一-龥぀-ゟ゠-ヿ]+
//   [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//   ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
const char* const kDeepseekV3[] = {
    "\\p{N}{1,3}",
    "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
    "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*"
    "|\\s*[\r\n]+"
    "|\\s+(?!\\S)"
    "|\\s+",
};

// deepseek-llm (V2, V2-Lite, Coder-V2): newlines, letters of cased scripts, ASCII and
// full-width punctuation, trailing whitespace, CJK/Hangul runs, digit runs.
const char* const kDeepseekLlm[] = {
    "[\r\n]",
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
    "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
    "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5"
    "\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59"
    "\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC"
    "\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107"
    "\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139"
    "\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE"
    "\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E"
    "\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A"
    "\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-\U000104FB"
    "\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF"
    "\U0001E900-\U0001E943]+",
    "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
    "\\s+$",
    "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
    "\\p{N}+",
};

// deepseek-coder (Coder v1).
const char* const kDeepseekCoder[] = {
    "[\r\n]",                                      // newlines alone
    "\\s?\\p{L}+",                                 // words
    "\\s?\\p{P}+",                                 // punctuation runs
    "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",  // CJK, Hangul
    "\\p{N}",                                      // one digit per piece
};

// PCRE2's \s under UCP is \p{Z} plus \h and \v, which adds U+180E. llama.cpp and HF
// tokenizers (Oniguruma) use the Unicode White_Space property; spell that out instead.
constexpr std::string_view kWhiteSpaceRanges =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Rewrites \s and \S of a regex into explicit White_Space classes. Handles escapes and
// character classes (with a leading ']' or '^]'); no \Q..\E or POSIX [:classes:], which
// the built-in patterns do not use.
Expected<std::string> spell_out_whitespace(std::string_view p) {
    std::string out;
    out.reserve(p.size() + 64);
    bool in_class = false;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char d = p[++i];
            if (d == 's') {
                out += in_class ? std::string(kWhiteSpaceRanges)
                                : "[" + std::string(kWhiteSpaceRanges) + "]";
            } else if (d == 'S') {
                if (in_class) return make_error("tokenizer: \\S inside a character class");
                out += "[^" + std::string(kWhiteSpaceRanges) + "]";
            } else {
                out += c;
                out += d;
            }
            continue;
        }
        out += c;
        if (!in_class && c == '[') {
            in_class = true;
            if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
            if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];  // a literal ']'
        } else if (in_class && c == ']') {
            in_class = false;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------
// UTF-8

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when s[i] does not
// start one. RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF; the
// same rules PCRE2 checks, so a run accepted here may be matched with PCRE2_NO_UTF_CHECK.
size_t utf8_sequence_length(const unsigned char* s, size_t n, size_t i) {
    const unsigned c = s[i];
    if (c < 0x80) return 1;
    auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        const unsigned c1 = s[i + 1];
        if (c == 0xE0 && c1 < 0xA0) return 0;   // overlong
        if (c == 0xED && c1 >= 0xA0) return 0;  // surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        const unsigned c1 = s[i + 1];
        if (c == 0xF0 && c1 < 0x90) return 0;   // overlong
        if (c == 0xF4 && c1 >= 0x90) return 0;  // above U+10FFFF
        return 4;
    }
    return 0;  // continuation byte, C0/C1, F5..FF
}

uint32_t utf8_decode(const unsigned char* s, size_t len) {
    switch (len) {
        case 1:
            return s[0];
        case 2:
            return (uint32_t(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        case 3:
            return (uint32_t(s[0] & 0x0F) << 12) | (uint32_t(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        default:
            return (uint32_t(s[0] & 0x07) << 18) | (uint32_t(s[1] & 0x3F) << 12) |
                   (uint32_t(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    }
}

void utf8_append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

// GPT-2 byte <-> unicode: printable bytes map to themselves, the other 68 (0x00-0x20,
// 0x7F-0xA0, 0xAD), ascending, to U+0100 + n, so every byte is one visible code point.
struct ByteLevel {
    std::array<uint32_t, 256> byte_to_cp{};
    std::array<int16_t, 512> cp_to_byte{};  // -1: not a byte's code point

    ByteLevel() {
        cp_to_byte.fill(-1);
        uint32_t n = 0;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable =
                (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            byte_to_cp[b] = printable ? b : 256 + n++;
            cp_to_byte[byte_to_cp[b]] = int16_t(b);
        }
    }

    // Token text -> the bytes it stands for. Code points outside the byte map and invalid
    // UTF-8 are passed through unchanged (llama.cpp writes a marker instead; real vocabs
    // have neither).
    std::string decode(std::string_view text) const {
        std::string out;
        out.reserve(text.size());
        const auto* s = reinterpret_cast<const unsigned char*>(text.data());
        for (size_t i = 0; i < text.size();) {
            const size_t len = utf8_sequence_length(s, text.size(), i);
            if (len == 0) {
                out += text[i++];
                continue;
            }
            const uint32_t cp = utf8_decode(s + i, len);
            if (cp < cp_to_byte.size() && cp_to_byte[cp] >= 0) {
                out += char(cp_to_byte[cp]);
            } else {
                out.append(text.substr(i, len));
            }
            i += len;
        }
        return out;
    }
};

const ByteLevel& byte_level() {
    static const ByteLevel table;
    return table;
}

// ---------------------------------------------------------------------------------------
// PCRE2 handles

struct Pcre2CodeFree {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
using Pcre2Code = std::unique_ptr<pcre2_code, Pcre2CodeFree>;

struct Pcre2MatchDataFree {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using Pcre2MatchData = std::unique_ptr<pcre2_match_data, Pcre2MatchDataFree>;

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
    return reinterpret_cast<const char*>(buf);
}

Expected<Pcre2Code> compile_regex(std::string_view source) {
    auto spelled = spell_out_whitespace(source);
    if (!spelled) return spelled.error();
    int code = 0;
    PCRE2_SIZE offset = 0;
    // UTF + UCP: code points and Unicode properties; DOLLAR_ENDONLY: '$' is the end of
    // the piece only, as in std::regex (llama.cpp) and since '\n' is always split out first.
    pcre2_code* re =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(spelled->data()), spelled->size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &offset, nullptr);
    if (re == nullptr) {
        return make_error("tokenizer: cannot compile pre-tokenizer regex at offset " +
                          std::to_string(offset) + ": " + pcre2_message(code));
    }
    Pcre2Code owned(re);
    // JIT is an optimisation only: when it is unavailable the interpreter runs.
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return owned;
}

// One match of `re` in subject[offset..len). Returns false at no match. The JIT runs on a
// small machine stack; when a pathological piece exhausts it, retry in the interpreter
// (heap-backed). Should that fail too, report no match: the rest of the piece becomes a
// gap, which still round-trips.
bool find_match(const pcre2_code* re, std::string_view subject, size_t offset, pcre2_match_data* md,
                size_t* begin, size_t* end) {
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    int rc = pcre2_match(re, s, subject.size(), offset, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        rc = pcre2_match(re, s, subject.size(), offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         nullptr);
    }
    if (rc < 0) return false;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    *begin = ov[0];
    *end = ov[1];
    return true;
}

// ---------------------------------------------------------------------------------------
// Merge table: (left symbol, right symbol) -> (rank, merged symbol). Open addressing,
// because the BPE inner loop does one lookup per candidate pair.

class MergeTable {
public:
    struct Entry {
        uint64_t key = kEmpty;
        int32_t rank = 0;
        int32_t result = 0;
    };

    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < 2 * n) cap <<= 1;
        slots_.assign(cap, Entry{});
        mask_ = cap - 1;
    }

    // Keeps the first (lowest-rank) entry of a duplicated pair, as llama.cpp does.
    void insert(int32_t a, int32_t b, int32_t rank, int32_t result) {
        const uint64_t key = pack(a, b);
        for (size_t i = hash(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) return;
            if (slots_[i].key == kEmpty) {
                slots_[i] = Entry{key, rank, result};
                return;
            }
        }
    }

    const Entry* find(int32_t a, int32_t b) const {
        const uint64_t key = pack(a, b);
        for (size_t i = hash(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) return &slots_[i];
            if (slots_[i].key == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are non-negative int32
    static uint64_t pack(int32_t a, int32_t b) {
        return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
    }
    size_t hash(uint64_t key) const {
        key ^= key >> 29;
        key *= 0xBF58476D1CE4E5B9ull;
        key ^= key >> 32;
        return size_t(key) & mask_;
    }

    std::vector<Entry> slots_;
    size_t mask_ = 0;
};

// ---------------------------------------------------------------------------------------
// Special tokens: a byte trie for leftmost-longest matching (HF's AddedVocabulary and
// transformers.js DictionarySplitter behave the same way).

class SpecialTrie {
public:
    SpecialTrie() : nodes_(1) {}

    void insert(std::string_view text, int32_t id) {
        if (text.empty()) return;
        first_[static_cast<unsigned char>(text[0])] = true;
        size_t node = 0;
        for (char ch : text) {
            const auto c = static_cast<unsigned char>(ch);
            int32_t child = -1;
            for (const auto& [label, next] : nodes_[node].children) {
                if (label == c) child = next;
            }
            if (child < 0) {
                child = int32_t(nodes_.size());
                nodes_[node].children.emplace_back(c, child);
                nodes_.emplace_back();
            }
            node = size_t(child);
        }
        nodes_[node].token = id;  // a duplicate text keeps the last id, as lookups do
        empty_ = false;
    }

    bool empty() const { return empty_; }
    bool may_start(unsigned char c) const { return first_[c]; }

    // The longest special token at text[pos]: its length (0: none) and id.
    size_t longest(std::string_view text, size_t pos, int32_t* id) const {
        size_t node = 0, best = 0;
        for (size_t i = pos; i < text.size(); ++i) {
            const auto c = static_cast<unsigned char>(text[i]);
            int32_t child = -1;
            for (const auto& [label, next] : nodes_[node].children) {
                if (label == c) {
                    child = next;
                    break;
                }
            }
            if (child < 0) break;
            node = size_t(child);
            if (nodes_[node].token >= 0) {
                best = i + 1 - pos;
                *id = nodes_[node].token;
            }
        }
        return best;
    }

private:
    struct Node {
        std::vector<std::pair<unsigned char, int32_t>> children;
        int32_t token = -1;
    };
    std::vector<Node> nodes_;
    std::array<bool, 256> first_{};
    bool empty_ = true;
};

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TextToId = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

std::atomic<uint64_t> g_next_serial{1};

}  // namespace

// ---------------------------------------------------------------------------------------

struct Tokenizer::Impl {
    uint64_t serial = 0;  // tells this tokenizer's entries in the per-thread cache apart
    std::string pre;
    std::vector<std::string> pieces;  // id -> token_to_piece()
    std::vector<TokenType> types;     // id -> the vocab's token type
    TextToId text_to_id;
    int32_t n_vocab = 0;

    // BPE works on symbol ids: a token id, or n_vocab + k for a string that merges can
    // produce (or a byte whose code point) is not itself a token.
    std::array<int32_t, 256> byte_symbol{};
    std::array<int32_t, 256> byte_token{};     // -1: the vocab lacks this byte's token
    std::vector<std::string> synthetic_bytes;  // k -> the raw bytes symbol n_vocab + k covers
    TextToId synthetic_by_text;
    MergeTable merges;

    SpecialTrie specials;        // every CONTROL, USER_DEFINED and UNKNOWN token
    SpecialTrie plain_specials;  // USER_DEFINED tokens that do not look special
    std::vector<Pcre2Code> regexes;

    int32_t bos = 0, eos = 0;
    bool add_bos = true;
    std::vector<int32_t> eog;
    std::optional<FimTokens> fim;

    std::optional<int32_t> symbol_of(std::string_view text) const {
        if (auto it = text_to_id.find(text); it != text_to_id.end()) return it->second;
        if (auto it = synthetic_by_text.find(text); it != synthetic_by_text.end()) {
            return it->second;
        }
        return std::nullopt;
    }

    int32_t add_synthetic(std::string text, std::string bytes) {
        const int32_t id = n_vocab + int32_t(synthetic_bytes.size());
        synthetic_bytes.push_back(std::move(bytes));
        synthetic_by_text.emplace(std::move(text), id);
        return id;
    }

    const std::string& bytes_of(int32_t symbol) const {
        return symbol < n_vocab ? pieces[size_t(symbol)]
                                : synthetic_bytes[size_t(symbol - n_vocab)];
    }

    // Scratch space one encode() call reuses across pieces.
    struct Scratch {
        struct Symbol {
            int32_t id;  // -1: merged into its left neighbour
            int32_t prev, next;
        };
        struct Candidate {
            int32_t rank, left, left_id, right_id, result;
        };
        std::vector<Symbol> symbols;
        std::vector<Candidate> heap;
        std::vector<std::string_view> split_a, split_b;
        Pcre2MatchData match_data{pcre2_match_data_create(1, nullptr)};
    };

    void bpe(std::string_view piece, Scratch& sc, std::vector<int32_t>& out) const;
    void bpe_cached(std::string_view piece, Scratch& sc, std::vector<int32_t>& out) const;
    void emit_symbol(int32_t symbol, std::vector<int32_t>& out) const;

    // Calls on_piece(string_view) for each BPE piece and on_special(id, text) for each
    // recognised special token, in text order.
    template <class OnPiece, class OnSpecial>
    void walk(std::string_view text, bool parse_special, Scratch& sc, OnPiece&& on_piece,
              OnSpecial&& on_special) const;
    template <class OnPiece>
    void walk_plain(std::string_view text, Scratch& sc, OnPiece&& on_piece) const;
};

void Tokenizer::Impl::emit_symbol(int32_t symbol, std::vector<int32_t>& out) const {
    if (symbol < n_vocab) {
        out.push_back(symbol);
        return;
    }
    // Not a token: write its bytes with the byte tokens (a byte without one is dropped,
    // as llama.cpp and HF drop unknown symbols when there is no <unk>).
    for (char ch : synthetic_bytes[size_t(symbol - n_vocab)]) {
        const int32_t t = byte_token[static_cast<unsigned char>(ch)];
        if (t >= 0) out.push_back(t);
    }
}

void Tokenizer::Impl::bpe(std::string_view piece, Scratch& sc, std::vector<int32_t>& out) const {
    using Candidate = Scratch::Candidate;
    if (piece.empty()) return;
    auto& sym = sc.symbols;
    sym.clear();
    const auto n = int32_t(piece.size());
    for (int32_t i = 0; i < n; ++i) {
        sym.push_back({byte_symbol[static_cast<unsigned char>(piece[size_t(i)])], i - 1,
                       i + 1 < n ? i + 1 : -1});
    }
    // Min-heap on (rank, left position): lowest rank first, ties to the leftmost pair.
    auto later = [](const Candidate& x, const Candidate& y) {
        return x.rank != y.rank ? x.rank > y.rank : x.left > y.left;
    };
    auto& heap = sc.heap;
    heap.clear();
    auto consider = [&](int32_t left) {
        if (left < 0) return;
        const int32_t right = sym[size_t(left)].next;
        if (right < 0) return;
        const auto* m = merges.find(sym[size_t(left)].id, sym[size_t(right)].id);
        if (m == nullptr) return;
        heap.push_back({m->rank, left, sym[size_t(left)].id, sym[size_t(right)].id, m->result});
        std::push_heap(heap.begin(), heap.end(), later);
    };
    for (int32_t i = 0; i + 1 < n; ++i) consider(i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later);
        const Candidate c = heap.back();
        heap.pop_back();
        auto& left = sym[size_t(c.left)];
        // Stale when either side has merged since: a merge changes the left symbol's id
        // (the result is longer) and only the left neighbour can absorb the right one.
        if (left.id != c.left_id || left.next < 0) continue;
        auto& right = sym[size_t(left.next)];
        if (right.id != c.right_id) continue;
        left.id = c.result;
        left.next = right.next;
        if (right.next >= 0) sym[size_t(right.next)].prev = c.left;
        right.id = -1;
        consider(left.prev);
        consider(c.left);
    }
    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) emit_symbol(sym[size_t(i)].id, out);
}

namespace {
// Per-thread cache of BPE results: piece bytes -> [offset, length) in `ids`.
struct BpeCache {
    uint64_t owner = 0;
    std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, StringHash, std::equal_to<>> map;
    std::vector<int32_t> ids;

    void reset(uint64_t serial) {
        owner = serial;
        map.clear();
        ids.clear();
    }
};
thread_local BpeCache t_bpe_cache;
}  // namespace

void Tokenizer::Impl::bpe_cached(std::string_view piece, Scratch& sc,
                                 std::vector<int32_t>& out) const {
    if (piece.size() == 1) {
        emit_symbol(byte_symbol[static_cast<unsigned char>(piece[0])], out);
        return;
    }
    if (piece.size() > kMaxCachedPieceBytes) {
        bpe(piece, sc, out);
        return;
    }
    BpeCache& cache = t_bpe_cache;
    if (cache.owner != serial || cache.map.size() >= kMaxCacheEntries ||
        cache.ids.size() >= kMaxCachedIds) {
        cache.reset(serial);
    }
    if (auto it = cache.map.find(piece); it != cache.map.end()) {
        const auto [offset, length] = it->second;
        out.insert(out.end(), cache.ids.begin() + offset, cache.ids.begin() + offset + length);
        return;
    }
    const size_t start = out.size();
    bpe(piece, sc, out);
    const auto offset = uint32_t(cache.ids.size());
    cache.ids.insert(cache.ids.end(), out.begin() + std::ptrdiff_t(start), out.end());
    cache.map.emplace(std::string(piece), std::make_pair(offset, uint32_t(out.size() - start)));
}

template <class OnPiece>
void Tokenizer::Impl::walk_plain(std::string_view text, Scratch& sc, OnPiece&& on_piece) const {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    size_t i = 0;
    while (i < text.size()) {
        // A maximal run of invalid bytes is one piece (see the header).
        size_t j = i;
        while (j < text.size() && utf8_sequence_length(s, text.size(), j) == 0) ++j;
        if (j > i) {
            on_piece(text.substr(i, j - i));
            i = j;
            continue;
        }
        // A maximal valid run goes through the regex list.
        while (j < text.size()) {
            const size_t len = utf8_sequence_length(s, text.size(), j);
            if (len == 0) break;
            j += len;
        }
        auto& cur = sc.split_a;
        auto& next = sc.split_b;
        cur.assign(1, text.substr(i, j - i));
        for (const auto& re : regexes) {
            next.clear();
            for (std::string_view piece : cur) {
                size_t gap = 0, offset = 0, begin = 0, end = 0;
                while (offset < piece.size() &&
                       find_match(re.get(), piece, offset, sc.match_data.get(), &begin, &end)) {
                    if (begin > gap) next.push_back(piece.substr(gap, begin - gap));
                    if (end > begin) {
                        next.push_back(piece.substr(begin, end - begin));
                        offset = end;
                    } else {
                        // An empty match (none of the built-in regexes has one) splits the
                        // gap and moves on by one code point, as JavaScript's matchAll does.
                        const auto* ps = reinterpret_cast<const unsigned char*>(piece.data());
                        offset =
                            end + std::max<size_t>(1, utf8_sequence_length(ps, piece.size(), end));
                    }
                    gap = end;
                }
                if (gap < piece.size()) next.push_back(piece.substr(gap));
            }
            std::swap(cur, next);
        }
        for (std::string_view piece : cur) on_piece(piece);
        i = j;
    }
}

template <class OnPiece, class OnSpecial>
void Tokenizer::Impl::walk(std::string_view text, bool parse_special, Scratch& sc,
                           OnPiece&& on_piece, OnSpecial&& on_special) const {
    const SpecialTrie& trie = parse_special ? specials : plain_specials;
    if (trie.empty()) {
        walk_plain(text, sc, on_piece);
        return;
    }
    size_t start = 0;
    for (size_t pos = 0; pos < text.size();) {
        int32_t id = -1;
        size_t len = 0;
        if (trie.may_start(static_cast<unsigned char>(text[pos]))) {
            len = trie.longest(text, pos, &id);
        }
        if (len == 0) {
            ++pos;
            continue;
        }
        if (pos > start) walk_plain(text.substr(start, pos - start), sc, on_piece);
        on_special(id, text.substr(pos, len));
        pos += len;
        start = pos;
    }
    if (start < text.size()) walk_plain(text.substr(start), sc, on_piece);
}

// ---------------------------------------------------------------------------------------

bool token_looks_special(std::string_view t) {
    auto starts = [&](std::string_view p) { return t.substr(0, p.size()) == p; };
    auto ends = [&](std::string_view e) {
        return t.size() >= e.size() && t.substr(t.size() - e.size()) == e;
    };
    if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
    if (starts("<|") && ends("|>")) return true;
    if (starts("<\uFF5C") && ends("\uFF5C>")) return true;
    return starts("<unused") && ends(">");
}

std::vector<std::string> pre_tokenizer_regexes(std::string_view pre) {
    auto list = [](const auto& arr) {
        return std::vector<std::string>(std::begin(arr), std::end(arr));
    };
    if (pre == "deepseek-v3") return list(kDeepseekV3);
    if (pre == "deepseek-llm") return list(kDeepseekLlm);
    if (pre == "deepseek-coder") return list(kDeepseekCoder);
    return {};
}

Expected<Tokenizer> Tokenizer::create(const Vocab& vocab) {
    if (vocab.model != "gpt2") {
        return make_error("tokenizer: unsupported tokenizer.ggml.model '" + vocab.model +
                          "' (only 'gpt2', byte-level BPE, is supported)");
    }
    const std::vector<std::string> sources = pre_tokenizer_regexes(vocab.pre);
    if (sources.empty()) {
        return make_error("tokenizer: unsupported tokenizer.ggml.pre '" + vocab.pre +
                          "' (supported: deepseek-v3, deepseek-llm, deepseek-coder)");
    }
    if (vocab.tokens.empty()) return make_error("tokenizer: the vocab has no tokens");
    if (vocab.tokens.size() > kMaxTokens) {
        return make_error("tokenizer: " + std::to_string(vocab.tokens.size()) +
                          " tokens is more than the supported " + std::to_string(kMaxTokens));
    }
    if (vocab.types.size() != vocab.tokens.size()) {
        return make_error("tokenizer: " + std::to_string(vocab.tokens.size()) + " tokens but " +
                          std::to_string(vocab.types.size()) + " token types");
    }
    if (vocab.merges.size() > kMaxMerges) {
        return make_error("tokenizer: " + std::to_string(vocab.merges.size()) +
                          " merges is more than the supported " + std::to_string(kMaxMerges));
    }
    const auto n = int32_t(vocab.tokens.size());
    auto check_id = [n](int32_t id, const char* what) -> std::optional<Error> {
        if (id >= 0 && id < n) return std::nullopt;
        return make_error(std::string("tokenizer: ") + what + " id " + std::to_string(id) +
                          " is outside the vocab (0.." + std::to_string(n - 1) + ")");
    };
    if (auto e = check_id(vocab.bos_id, "BOS")) return *e;
    if (auto e = check_id(vocab.eos_id, "EOS")) return *e;

    auto impl = std::make_shared<Impl>();
    impl->serial = g_next_serial.fetch_add(1);
    impl->pre = vocab.pre;
    impl->n_vocab = n;
    impl->bos = vocab.bos_id;
    impl->eos = vocab.eos_id;
    impl->add_bos = vocab.add_bos;

    const ByteLevel& bl = byte_level();
    impl->text_to_id.reserve(size_t(n));
    impl->pieces.resize(size_t(n));
    impl->types = vocab.types;
    for (int32_t id = 0; id < n; ++id) {
        const std::string& text = vocab.tokens[size_t(id)];
        if (!text.empty()) impl->text_to_id[text] = id;  // last id wins, as in llama.cpp
        switch (vocab.types[size_t(id)]) {
            case TokenType::kNormal:
                impl->pieces[size_t(id)] = bl.decode(text);
                break;
            case TokenType::kUserDefined:
                // Plain added text (DeepSeek LLM's 13 single characters such as 'ö'): split
                // out of any text, as llama.cpp and HF do. Special-looking ones are control.
                if (!token_looks_special(text)) impl->plain_specials.insert(text, id);
                [[fallthrough]];
            case TokenType::kControl:
            case TokenType::kUnknown:
                impl->pieces[size_t(id)] = text;
                impl->specials.insert(text, id);  // a later duplicate text overrides
                break;
            default:
                break;  // UNUSED padding, BYTE, UNDEFINED: no text
        }
    }

    for (int b = 0; b < 256; ++b) {
        std::string cp;
        utf8_append(cp, bl.byte_to_cp[size_t(b)]);
        if (auto id = impl->symbol_of(cp)) {
            impl->byte_token[size_t(b)] = *id;
            impl->byte_symbol[size_t(b)] = *id;
        } else {
            impl->byte_token[size_t(b)] = -1;
            impl->byte_symbol[size_t(b)] = impl->add_synthetic(cp, std::string(1, char(b)));
        }
    }

    impl->merges.reserve(vocab.merges.size());
    for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
        const std::string& m = vocab.merges[rank];
        // llama.cpp splits at the first space after the first character.
        const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
        if (space == std::string::npos || space + 1 >= m.size()) {
            return make_error("tokenizer: merge " + std::to_string(rank) + " '" + m +
                              "' is not 'left right'");
        }
        const std::string_view left(m.data(), space),
            right(m.data() + space + 1, m.size() - space - 1);
        const auto a = impl->symbol_of(left);
        const auto b = impl->symbol_of(right);
        if (!a || !b) {
            return make_error("tokenizer: merge " + std::to_string(rank) + " '" + m +
                              "' names unknown token '" + std::string(a ? right : left) + "'");
        }
        std::string joined = std::string(left) + std::string(right);
        auto result = impl->symbol_of(joined);
        if (!result) {
            std::string bytes = impl->bytes_of(*a) + impl->bytes_of(*b);
            result = impl->add_synthetic(std::move(joined), std::move(bytes));
        }
        impl->merges.insert(*a, *b, int32_t(rank), *result);
    }
    if (impl->synthetic_bytes.size() > kMaxTokens) {
        return make_error("tokenizer: too many merge results missing from the vocab");
    }

    for (const std::string& source : sources) {
        auto re = compile_regex(source);
        if (!re) return re.error();
        impl->regexes.push_back(std::move(*re));
    }

    impl->eog.push_back(impl->eos);
    for (const char* text : {"<|EOT|>", "<｜end▁of▁sentence｜>"}) {
        if (auto it = impl->text_to_id.find(std::string_view(text)); it != impl->text_to_id.end()) {
            impl->eog.push_back(it->second);
        }
    }
    auto find = [&](std::string_view text) -> int32_t {
        auto it = impl->text_to_id.find(text);
        return it == impl->text_to_id.end() ? -1 : it->second;
    };
    const int32_t fim_pre = find("<｜fim▁begin｜>");
    const int32_t fim_suf = find("<｜fim▁hole｜>");
    const int32_t fim_mid = find("<｜fim▁end｜>");
    if (fim_pre >= 0 && fim_suf >= 0 && fim_mid >= 0) {
        impl->fim = FimTokens{fim_pre, fim_suf, fim_mid};
    }

    return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos) out.push_back(impl_->bos);
    Impl::Scratch sc;
    impl_->walk(
        text, parse_special, sc, [&](std::string_view piece) { impl_->bpe_cached(piece, sc, out); },
        [&](int32_t id, std::string_view) { out.push_back(id); });
    return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text, bool parse_special) const {
    std::vector<std::string> pieces;
    Impl::Scratch sc;
    impl_->walk(
        text, parse_special, sc, [&](std::string_view piece) { pieces.emplace_back(piece); },
        [&](int32_t, std::string_view special) { pieces.emplace_back(special); });
    return pieces;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (int32_t id : ids) {
        if (id >= 0 && id < impl_->n_vocab) out += impl_->pieces[size_t(id)];
    }
    return out;
}

std::string Tokenizer::token_to_piece(int32_t id) const {
    if (id < 0 || id >= impl_->n_vocab) return {};
    return impl_->pieces[size_t(id)];
}

TokenType Tokenizer::token_type(int32_t id) const {
    if (id < 0 || id >= impl_->n_vocab) return TokenType::kUnused;
    return impl_->types[size_t(id)];
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
    auto it = impl_->text_to_id.find(text);
    if (it == impl_->text_to_id.end()) return std::nullopt;
    return it->second;
}

int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
bool Tokenizer::add_bos_by_default() const { return impl_->add_bos; }
int32_t Tokenizer::n_vocab() const { return impl_->n_vocab; }
const std::string& Tokenizer::pre() const { return impl_->pre; }
std::optional<FimTokens> Tokenizer::fim() const { return impl_->fim; }

bool Tokenizer::is_eog(int32_t id) const {
    return std::find(impl_->eog.begin(), impl_->eog.end(), id) != impl_->eog.end();
}

}  // namespace latent::engine
