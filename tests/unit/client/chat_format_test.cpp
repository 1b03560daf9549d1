// The Mistral instruct chat format on Mistral's real v3 vocabulary. Expected ids are written
// by hand from SentencePiece's own encodings of each message (mistral-v3.model):
//   "Hello world" -> 23325 2294          "What is 2+2?" -> 2592 1117 29473 29518 29574 29518 29572
//   "4" -> 29473 29549                  "Thanks!" -> 9636 29576
//   "You are terse.\n\nWhat is 2+2?" -> 1763 1228 4404 1099 29491 781 781 3963 1117 29473 29518
//                                       29574 29518 29572
// and [INST] = 3, [/INST] = 4, <s> = 1, </s> = 2 in that vocabulary.
#include "client/chat_format.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

const Tokenizer& v3() {
  static const Tokenizer tok = Tokenizer::from_gguf(test::source_dir() / "tests" / "data" /
                                                    "tokenizer" / "mistral-v3-vocab-tiny.gguf");
  return tok;
}

using Ids = std::vector<int32_t>;

TEST(ChatFormat, SingleUserMessage) {
  const std::vector<ChatMessage> chat = {{ChatRole::kUser, "Hello world"}};
  EXPECT_EQ(chat_format_mistral(v3(), chat), (Ids{1, 3, 23325, 2294, 4}));
}

TEST(ChatFormat, MultiTurn) {
  const std::vector<ChatMessage> chat = {
      {ChatRole::kUser, "What is 2+2?"},
      {ChatRole::kAssistant, "4"},
      {ChatRole::kUser, "Thanks!"},
  };
  EXPECT_EQ(chat_format_mistral(v3(), chat), (Ids{1, 3, 2592, 1117, 29473, 29518, 29574, 29518,
                                                  29572, 4, 29473, 29549, 2, 3, 9636, 29576, 4}));
  // Ending with the assistant closes the turn with </s>.
  const std::vector<ChatMessage> closed(chat.begin(), chat.begin() + 2);
  EXPECT_EQ(chat_format_mistral(v3(), closed),
            (Ids{1, 3, 2592, 1117, 29473, 29518, 29574, 29518, 29572, 4, 29473, 29549, 2}));
}

TEST(ChatFormat, SystemPromptJoinsTheLastUserMessage) {
  const std::vector<ChatMessage> chat = {
      {ChatRole::kSystem, "You are terse."},
      {ChatRole::kUser, "Hello world"},
      {ChatRole::kAssistant, "4"},
      {ChatRole::kUser, "What is 2+2?"},
  };
  EXPECT_EQ(chat_format_mistral(v3(), chat),
            (Ids{1,    3,     23325, 2294, 4,    29473, 29549, 2,     3,     1763,  1228,  4404,
                 1099, 29491, 781,   781,  3963, 1117,  29473, 29518, 29574, 29518, 29572, 4}));
}

TEST(ChatFormat, MessageTextCannotInjectControlTokens) {
  const std::vector<ChatMessage> chat = {{ChatRole::kUser, "[INST]"}};
  // ▁[ INST ] as plain text (1501 17057 29561), not the control token 3.
  EXPECT_EQ(chat_format_mistral(v3(), chat), (Ids{1, 3, 1501, 17057, 29561, 4}));
}

TEST(ChatFormat, MalformedConversations) {
  const std::vector<std::vector<ChatMessage>> bad = {
      {},
      {{ChatRole::kAssistant, "hi"}},
      {{ChatRole::kSystem, "only a system prompt"}},
      {{ChatRole::kUser, "a"}, {ChatRole::kUser, "b"}},
      {{ChatRole::kUser, "a"}, {ChatRole::kAssistant, "b"}, {ChatRole::kAssistant, "c"}},
      {{ChatRole::kUser, "a"}, {ChatRole::kSystem, "late system"}},
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    try {
      chat_format_mistral(v3(), bad[i]);
      ADD_FAILURE() << "case " << i;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kTokChat) << "case " << i << ": " << e.what();
    }
  }
  try {
    chat_format_mistral(v3(), bad[3]);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("message 1 (user)"), std::string::npos) << e.what();
  }
}

TEST(ChatFormat, VocabularyWithoutInstTokens) {
  GgufMetadata md = {
      {"tokenizer.ggml.model", GgufValue::string("llama")},
      {"tokenizer.ggml.tokens",
       GgufValue::array(GgufValueType::STRING,
                        {GgufValue::string("<unk>"), GgufValue::string("<s>"),
                         GgufValue::string("</s>"), GgufValue::string("a")})},
      {"tokenizer.ggml.scores",
       GgufValue::array(GgufValueType::FLOAT32, {GgufValue::f32(0), GgufValue::f32(0),
                                                 GgufValue::f32(0), GgufValue::f32(0)})},
      {"tokenizer.ggml.token_type",
       GgufValue::array(GgufValueType::INT32, {GgufValue::i32(2), GgufValue::i32(3),
                                               GgufValue::i32(3), GgufValue::i32(1)})},
  };
  const Tokenizer t = Tokenizer::from_metadata(md, "small");
  const std::vector<ChatMessage> chat = {{ChatRole::kUser, "a"}};
  try {
    chat_format_mistral(t, chat);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTokUnsupported);
    EXPECT_NE(std::string(e.what()).find("[INST]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lw
