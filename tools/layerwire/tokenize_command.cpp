// `layerwire tokenize` and `layerwire detokenize`: the model's own tokenizer, read from a
// fragment store's manifest (no weights are loaded), on raw text or on token ids. tokenize
// prints the ids on one line ("ids: 1,23325,2294", what detokenize --ids takes) and then one
// row per token with its piece; --json prints {"ids": [...], "pieces": [...]} instead.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "client/tokenizer.h"
#include "common/error.h"
#include "tools/layerwire/commands.h"

namespace lw::cli {
namespace {

// A piece as shown in the table: bytes below 0x20 and 0x7F as \xNN, the rest as stored.
std::string printable(std::string_view piece) {
  std::string out;
  char buf[8];
  for (unsigned char c : piece) {
    if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorCode::kIoOpen, "--file " + path + ": cannot be opened");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error(ErrorCode::kIoRead, "--file " + path + ": read failed");
  return text;
}

class TokenizeCommand : public Command {
 public:
  explicit TokenizeCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "tokenize",
        "Print the token ids (and pieces) the model's own tokenizer gives for raw text. The "
        "tokenizer comes from the store's manifest (SentencePiece \"llama\" or byte-level BPE "
        "\"gpt2\"/tekken vocabularies). Control tokens such as [INST] written in the text are "
        "parsed only with --special; otherwise they are plain text.\n"
        "Examples:\n"
        "  layerwire tokenize --fragments tiny.store --text \"Hello world\"\n"
        "  layerwire tokenize --fragments mistral.store --text \"[INST] Hi [/INST]\" --special "
        "--bos --json\n"
        "  layerwire tokenize --fragments mistral.store --file prompt.txt");
    app->add_option("--fragments", dir_, "fragment store folder (made by fragment_tool split)")
        ->required()
        ->check(CLI::ExistingDirectory);
    auto* text = app->add_option("--text", text_, "the text to tokenize");
    auto* file = app->add_option("--file", file_, "read the text from this file (bytes as is)");
    text->excludes(file);
    file->excludes(text);
    app->add_flag("--special", special_, "parse control tokens ([INST], <s>, ...) in the text");
    app->add_flag("--bos", bos_, "put the BOS token first");
    app->add_flag("--json", json_, "print {\"ids\": [...], \"pieces\": [...]}");
  }

  int run() override {
    if (app->count("--text") == 0 && app->count("--file") == 0) {
      throw Error(ErrorCode::kCliArgument, "tokenize needs --text or --file");
    }
    const std::string text = app->count("--file") ? read_text_file(file_) : text_;
    const Tokenizer tok = Tokenizer::from_store(dir_);
    const std::vector<int32_t> ids = tok.encode(text, bos_, special_);
    if (json_) {
      nlohmann::json out;
      out["ids"] = ids;
      nlohmann::json pieces = nlohmann::json::array();
      // Pieces are UTF-8 except in odd vocabularies: replace invalid bytes rather than fail.
      for (int32_t id : ids) pieces.push_back(tok.piece(id));
      out["pieces"] = pieces;
      std::printf("%s\n",
                  out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return kExitOk;
    }
    std::string line = "ids:";
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : " ") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
    std::printf("%zu tokens\n", ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      std::printf("%6zu %8d  %s\n", i, ids[i], printable(tok.piece(ids[i])).c_str());
    }
    return kExitOk;
  }

 private:
  std::string dir_, text_, file_;
  bool special_ = false, bos_ = false, json_ = false;
};

class DetokenizeCommand : public Command {
 public:
  explicit DetokenizeCommand(CLI::App& parent) {
    app = parent.add_subcommand(
        "detokenize",
        "Print the text of token ids with the model's own tokenizer (read from the store's "
        "manifest). Control tokens print nothing unless --special.\n"
        "Examples:\n"
        "  layerwire detokenize --fragments tiny.store --ids 1,300,301\n"
        "  layerwire detokenize --fragments mistral.store --ids 1,3,23325,4 --special");
    app->add_option("--fragments", dir_, "fragment store folder (made by fragment_tool split)")
        ->required()
        ->check(CLI::ExistingDirectory);
    app->add_option("--ids", ids_text_, "comma-separated token ids, e.g. 1,23325,2294")->required();
    app->add_flag("--special", special_, "print control tokens as their text (<s>, [INST])");
  }

  int run() override {
    const std::vector<int32_t> ids = parse_token_list(ids_text_, "--ids");
    const Tokenizer tok = Tokenizer::from_store(dir_);
    DecodeOptions options;
    options.render_special = special_;
    const std::string text = tok.decode(ids, options);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
    return kExitOk;
  }

 private:
  std::string dir_, ids_text_;
  bool special_ = false;
};

}  // namespace

std::unique_ptr<Command> make_tokenize(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<TokenizeCommand>(parent);
}

std::unique_ptr<Command> make_detokenize(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<DetokenizeCommand>(parent);
}

}  // namespace lw::cli
