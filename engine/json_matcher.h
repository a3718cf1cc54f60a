// JsonMatcher: a byte-level incremental matcher over a JsonGrammar. It takes the bytes of
// a document one at a time, refuses (leaving its state as it was) a byte after which no
// valid document could follow, says when the value is complete, and writes the shortest
// bytes that would complete it. It knows nothing of tokens: json_constraint.h maps its
// answers onto a vocabulary.
//
// What it accepts is RFC 8259 JSON as the grammar allows it, with caps that a
// random-weight model would otherwise never stop testing: at most kMaxWhitespace
// whitespace bytes in a row between tokens, numbers of at most kMaxIntDigits integer,
// kMaxFracDigits fraction and kMaxExpDigits exponent digits, JsonGrammar::kMaxNesting
// values open at once. Strings must be valid UTF-8 without raw control characters; \u
// escapes must pair surrogates (nlohmann::json, like most parsers, refuses lone ones).
//
// Choices (anyOf, a type array) are followed nondeterministically: a State holds up to
// kMaxAlternatives stacks of frames, each a way the bytes so far can be read. A State is a
// flat value, copied in proportion to what it holds, and step() writes into a caller's
// State without allocating, so masks can feed millions of bytes.
//
// Thread safety: a JsonMatcher (and a State) is used by one thread at a time; the grammar
// it shares is immutable.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/json_schema.h"

namespace latent::engine {

class JsonMatcher {
public:
    static constexpr int kMaxWhitespace = 32;
    static constexpr int kMaxIntDigits = 15;  // < 2^53: exact in a double
    static constexpr int kMaxFracDigits = 15;
    // Two, not three: with 15 integer digits, e999 would overflow a double and parsers
    // (nlohmann::json among them) reject the number.
    static constexpr int kMaxExpDigits = 2;
    static constexpr int kMaxAlternatives = 16;  // readings kept at once; more are dropped
    static constexpr int kMaxStack = JsonGrammar::kMaxNesting + 1;  // + the root frame
    static constexpr int kMaxFrames = 256;  // all alternatives' frames together

    // One open value (or the document root) in one reading. Fields by kind, see
    // json_matcher.cpp. Plain data with no padding, so states compare and hash as bytes.
    struct Frame {
        uint32_t node = 0;
        uint8_t kind = 0;
        uint8_t phase = 0;
        uint16_t a = 0;
        uint16_t b = 0;
        uint16_t c = 0;
        uint8_t d = 0;
        uint8_t e = 0;
        uint16_t pad = 0;
        uint64_t m = 0;
    };

    // The readings of the bytes fed so far. Copy costs O(frames in use).
    class State {
    public:
        State() = default;
        State(const State& o) { *this = o; }
        State& operator=(const State& o);

        int alternatives() const { return n_alts_; }
        bool empty() const { return n_alts_ == 0; }
        // Every reading is inside a string with nothing pending (no escape, no partial
        // UTF-8 character): any further plain string content leaves the state unchanged.
        bool in_plain_string() const;
        // The state as bytes, equal for equal states (a cache key).
        void append_key(std::string& out) const;

    private:
        friend class JsonMatcher;
        friend struct JsonStepper;  // json_matcher.cpp
        struct Alt {
            uint16_t begin = 0;  // first frame in frames_
            uint8_t depth = 0;   // frames in this reading, root included
            uint8_t ws = 0;      // whitespace bytes just read in a row
        };
        uint16_t n_frames_ = 0;
        uint8_t n_alts_ = 0;
        std::array<Alt, kMaxAlternatives> alts_{};
        std::array<Frame, kMaxFrames> frames_{};
    };

    // `grammar` must not be null.
    explicit JsonMatcher(std::shared_ptr<const JsonGrammar> grammar);

    // Feeds one byte: false (state unchanged) if no valid document continues with it.
    bool feed(uint8_t byte);
    // Feeds all of `bytes` or, if one is refused, none of them.
    bool feed(std::string_view bytes);
    // Whether feed(bytes) would succeed; changes nothing.
    bool accepts(std::string_view bytes) const;

    // A value is complete: the document could end here (an end token may come).
    bool is_complete() const;
    // Complete, and nothing but whitespace may follow (a number at the end could still
    // take digits: complete, not closed).
    bool is_closed() const;
    // The shortest bytes that complete the document from here ("" when complete).
    std::string shortest_completion() const;
    // Its length in bytes, without building it.
    uint32_t completion_length() const;

    const State& state() const { return state_; }
    // Restores a state this matcher (or one over the same grammar) produced.
    void set_state(const State& s) { state_ = s; }
    const JsonGrammar& grammar() const { return *grammar_; }
    const std::shared_ptr<const JsonGrammar>& grammar_ptr() const { return grammar_; }

    // The low-level step for mask computation: `out` = `in` after `byte`; false (out
    // empty) if refused. `in` and `out` must be different objects.
    static bool step(const JsonGrammar& g, const State& in, uint8_t byte, State& out);
    static uint32_t completion_length(const JsonGrammar& g, const State& s);
    static bool is_complete(const JsonGrammar& g, const State& s);
    static bool is_closed(const State& s);

private:
    std::shared_ptr<const JsonGrammar> grammar_;
    State state_;
    State scratch_;
};

}  // namespace latent::engine
