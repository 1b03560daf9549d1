// `layerwire chat`: an interactive conversation in the Mistral instruct format
// (client/chat_format.h) across the layer servers of a client config. The conversation
// stays in one session: each turn forwards only the new tokens (the servers keep the KV of
// everything before) and streams the answer. Commands: /reset starts over, /quit (or EOF)
// ends, /stats prints the last turn's timings.
#include <cstdio>
#include <iostream>
#include <string>

#include "client/chat_format.h"
#include "client/client_config.h"
#include "client/remote_executor.h"
#include "client/tokenizer.h"
#include "common/error.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {
namespace {

class ChatCommand : public Command {
 public:
  explicit ChatCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "chat",
        "Chat with the model across the layer servers of a client config, in the Mistral "
        "instruct format ([INST] ... [/INST]). Type a message and press Enter; the answer "
        "streams back. /reset forgets the conversation, /stats shows the last turn's "
        "timings, /quit or end of input ends.");
    app->add_option("-c,--config", config_, "client config (config/client.json)")
        ->required()
        ->check(CLI::ExistingFile);
    app->add_option("--system", system_, "system prompt (prepended to the last user message)");
    app->add_option("--format", format_,
                    "prompt format: mistral ([INST] ... [/INST] control tokens; the "
                    "vocabulary must have them) or plain (\"User: ...\\nAssistant: ...\" text, "
                    "for vocabularies without them, e.g. synthesized test models)")
        ->check(CLI::IsMember({"mistral", "plain"}))
        ->capture_default_str();
    add_sampling_options(*app, flags_);
    app->footer(
        "Examples:\n"
        "  layerwire chat --config config/client.json\n"
        "  layerwire chat -c config/demo-cluster.json --format plain --greedy -n 64\n"
        "  printf 'Hello\\nTell me more\\n' | layerwire chat -c client.json --seed 1\n");
  }

  int run() override {
    flags_.finish();
    RemoteLayerExecutor ex(client_config_load(config_));
    const Tokenizer& tok = ex.tokenizer();
    std::vector<ChatMessage> messages;
    SessionId session = ex.open_session();
    GenerateResult last;
    bool have_last = false;
    std::fprintf(stderr, "chat: %s, %zu servers; /reset, /stats, /quit\n",
                 ex.params().preset.c_str(), ex.route().size());
    std::string line;
    for (;;) {
      std::fprintf(stdout, "\n> ");
      std::fflush(stdout);
      if (!std::getline(std::cin, line) || line == "/quit" || line == "/exit") break;
      if (line.empty()) continue;
      if (line == "/reset") {
        ex.close_session(session);
        session = ex.open_session();
        messages.clear();
        std::fprintf(stdout, "(conversation cleared)\n");
        continue;
      }
      if (line == "/stats") {
        if (have_last) print_generation_report(last, stdout);
        continue;
      }
      if (messages.empty() && !system_.empty()) {
        messages.push_back({ChatRole::kSystem, system_});
      }
      messages.push_back({ChatRole::kUser, line});
      // The whole conversation's ids; the session already holds a prefix of them.
      const std::vector<int32_t> all = format_ == "mistral" ? chat_format_mistral(tok, messages)
                                                            : plain_format(tok, messages);
      const std::vector<int32_t>& held = ex.session_tokens(session);
      size_t common = 0;
      while (common < held.size() && common < all.size() && held[common] == all[common]) {
        ++common;
      }
      if (common < held.size() || common == all.size()) {
        // The formatted history diverged from what the session holds (the system prompt
        // moves to the last user message): start a fresh session with the whole text.
        ex.close_session(session);
        session = ex.open_session();
        common = 0;
      }
      const std::span<const int32_t> fresh(all.data() + common, all.size() - common);
      GenerateOptions options = flags_.options;
      last = ex.generate_tokens(session, fresh, flags_.sampling, options,
                                [](int32_t, const std::string& raw) {
                                  const std::string text = terminal_text(raw);
                                  std::fwrite(text.data(), 1, text.size(), stdout);
                                  std::fflush(stdout);
                                  return true;
                                });
      have_last = true;
      std::fprintf(stdout, "\n");
      messages.push_back({ChatRole::kAssistant, last.text});
      // The answer's EOS (when the model gave one) was not forwarded; the next turn's
      // formatted ids carry it, so the common prefix logic above forwards it then.
    }
    ex.close_session(session);
    return kExitOk;
  }

 private:
  // "User: ...\nAssistant: ...\n" turns, BOS first, the last one left open.
  static std::vector<int32_t> plain_format(const Tokenizer& tok,
                                           const std::vector<ChatMessage>& messages) {
    std::string text;
    for (const ChatMessage& m : messages) {
      if (m.role == ChatRole::kSystem) text += m.content + "\n\n";
      if (m.role == ChatRole::kUser) text += "User: " + m.content + "\nAssistant:";
      if (m.role == ChatRole::kAssistant) text += " " + m.content + "\n";
    }
    return tok.encode(text, tok.bos() >= 0, false);
  }

  std::string config_, system_, format_ = "mistral";
  SamplingFlags flags_;
};

}  // namespace

std::unique_ptr<Command> make_chat(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<ChatCommand>(parent);
}

}  // namespace lw::cli
