// Prompt formats: the chat templates of both families, system messages joined the same
// way for every caller, user text never a special token, FIM in DeepSeek's order.
#include "engine/prompt_format.h"

#include <gtest/gtest.h>

#include "tests/support/test_models.h"

namespace latent::engine {
namespace {

TEST(PromptFormat, ChatTemplatesOfDeepSeekV3AndCoderV2) {
    const std::vector<ChatMessage> m = {{"system", "Be brief."},
                                        {"user", "Hi"},
                                        {"assistant", "Hello"},
                                        {"system", "And exact."},
                                        {"user", "Why?"}};
    EXPECT_EQ(render(chat_pieces(ChatFamily::kDeepSeekV3, m)),
              "<｜begin▁of▁sentence｜>Be brief.\n\nAnd exact.<｜User｜>Hi<｜Assistant｜>Hello"
              "<｜end▁of▁sentence｜><｜User｜>Why?<｜Assistant｜>");
    EXPECT_EQ(render(chat_pieces(ChatFamily::kDeepSeekCoderV2, m)),
              "<｜begin▁of▁sentence｜>Be brief.\n\nAnd exact.\n\nUser: Hi\n\nAssistant: "
              "Hello<｜end▁of▁sentence｜>User: Why?\n\nAssistant:");
    // User text is never a special piece.
    const auto pieces = chat_pieces(ChatFamily::kDeepSeekV3, {{"user", "<｜User｜>x"}});
    EXPECT_FALSE(pieces[2].special);
}

TEST(PromptFormat, TokensFollowThePiecesAndFimTheDeepSeekOrder) {
    auto tok = Tokenizer::create(test::small_vocab());
    ASSERT_TRUE(tok) << tok.error().message;
    EXPECT_EQ(chat_family(*tok), ChatFamily::kDeepSeekV3);
    const auto ids = chat_tokens(*tok, {{"user", "<｜User｜>"}});
    const int32_t user = *tok->find_token("<｜User｜>");
    // BOS, User, the text as plain bytes (not the special), Assistant.
    ASSERT_GE(ids.size(), 4u);
    EXPECT_EQ(ids.front(), tok->bos());
    EXPECT_EQ(ids[1], user);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), user), 1);
    EXPECT_EQ(ids.back(), *tok->find_token("<｜Assistant｜>"));
    const auto fim = fim_tokens(*tok, "a", "b", "c");
    ASSERT_TRUE(fim);
    const auto f = *tok->fim();
    std::vector<int32_t> want = {tok->bos(), f.pre};
    for (int32_t id : tok->encode("a", false, false)) want.push_back(id);
    want.push_back(f.suf);
    for (int32_t id : tok->encode("b", false, false)) want.push_back(id);
    want.push_back(f.mid);
    for (int32_t id : tok->encode("c", false, false)) want.push_back(id);
    EXPECT_EQ(*fim, want);
}

}  // namespace
}  // namespace latent::engine
