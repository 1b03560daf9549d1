#include "client/chat_format.h"

#include "common/error.h"

namespace lw {
namespace {

int32_t control_token(const Tokenizer& tokenizer, std::string_view text) {
  const std::optional<int32_t> id = tokenizer.find(text);
  if (!id || tokenizer.type(*id) != TokenType::kControl) {
    throw Error(ErrorCode::kTokUnsupported, "the Mistral chat format needs a control token \"" +
                                                std::string(text) +
                                                "\" and this vocabulary has none");
  }
  return *id;
}

[[noreturn]] void bad_order(size_t index, ChatRole role, const std::string& why) {
  throw Error(ErrorCode::kTokChat, "message " + std::to_string(index) + " (" +
                                       std::string(chat_role_name(role)) + "): " + why);
}

void append(std::vector<int32_t>& out, const std::vector<int32_t>& ids) {
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace

std::string_view chat_role_name(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
  }
  return "?";
}

std::vector<int32_t> chat_format_mistral(const Tokenizer& tokenizer,
                                         std::span<const ChatMessage> messages) {
  if (messages.empty()) throw Error(ErrorCode::kTokChat, "the conversation has no messages");
  const int32_t inst = control_token(tokenizer, "[INST]");
  const int32_t inst_end = control_token(tokenizer, "[/INST]");
  if (tokenizer.bos() < 0 || tokenizer.eos() < 0) {
    throw Error(ErrorCode::kTokUnsupported,
                "the Mistral chat format needs BOS and EOS tokens and this vocabulary lacks one");
  }

  size_t first = 0;
  std::string system;
  if (messages[0].role == ChatRole::kSystem) {
    system = messages[0].content;
    first = 1;
    if (messages.size() == 1)
      bad_order(0, ChatRole::kSystem, "a system prompt needs a user message");
  }
  size_t last_user = first;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatRole want = (i - first) % 2 == 0 ? ChatRole::kUser : ChatRole::kAssistant;
    if (messages[i].role != want) {
      bad_order(i, messages[i].role,
                "expected a " + std::string(chat_role_name(want)) +
                    " message (after an optional first system message, user and assistant "
                    "messages alternate, starting with user)");
    }
    if (want == ChatRole::kUser) last_user = i;
  }

  std::vector<int32_t> out = {tokenizer.bos()};
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == ChatRole::kUser) {
      out.push_back(inst);
      const std::string text =
          (i == last_user && !system.empty()) ? system + "\n\n" + m.content : m.content;
      append(out, tokenizer.encode(text, false, false));
      out.push_back(inst_end);
    } else {
      append(out, tokenizer.encode(m.content, false, false));
      out.push_back(tokenizer.eos());
    }
  }
  return out;
}

}  // namespace lw
