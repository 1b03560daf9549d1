// The Mistral instruct chat format: turns a conversation into token ids the way
// mistral-common's instruct tokenizers (v2/v3) build them, with control tokens as ids (never
// parsed from message text, so a user writing "[INST]" cannot inject one):
//   <s> [INST] user1 [/INST] assistant1 </s> [INST] user2 [/INST]
// Each message's text is encoded on its own (SentencePiece vocabularies give it the dummy-
// prefix space, so "Hello" becomes "▁Hello"). A system prompt is prepended to the last user
// message as "SYSTEM\n\nUSER" (mistral-common v3).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/tokenizer.h"

namespace lw {

enum class ChatRole { kSystem, kUser, kAssistant };
std::string_view chat_role_name(ChatRole role);  // "system", "user", "assistant"

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;
};

// The ids of `messages`: an optional first system message, then user and assistant messages
// alternating, starting with a user message. A conversation ending with a user message ends
// with [/INST] (ready for the model to answer); one ending with an assistant message ends
// with </s>. Throws LW-TOK-006 naming the message index for any other order or an empty
// conversation, LW-TOK-002 when the vocabulary lacks the [INST] / [/INST] control tokens or
// BOS / EOS.
std::vector<int32_t> chat_format_mistral(const Tokenizer& tokenizer,
                                         std::span<const ChatMessage> messages);

}  // namespace lw
