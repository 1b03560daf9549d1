// fragment_tool inspect: what a store or a GGUF file holds.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/hash.h"
#include "fragments/arch.h"
#include "fragments/gguf.h"
#include "fragments/store.h"
#include "tools/fragment_tool/commands.h"

namespace lw::tool {
namespace {

using json = nlohmann::json;

struct Row {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> ne;
  uint64_t bytes;
  std::string fragment;  // store only
};

std::string shape(const std::vector<uint64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? "x" : "") + std::to_string(ne[i]);
  return s;
}

json params_json(const ModelParams& p) {
  return json{{"preset", p.preset},           {"n_layers", p.n_layers},
              {"dim", p.dim},                 {"n_heads", p.n_heads},
              {"n_kv_heads", p.n_kv_heads},   {"head_dim", p.head_dim},
              {"ffn_dim", p.ffn_dim},         {"vocab_size", p.vocab_size},
              {"context_length", p.context_length}, {"rope_theta", p.rope_theta},
              {"norm_eps", p.norm_eps},       {"tied_output", p.tied_output},
              {"tokenizer_model", p.tokenizer_model}};
}

void print_params(const ModelParams& p) {
  std::printf("preset          %s\n", p.preset.c_str());
  std::printf("layers          %u\n", p.n_layers);
  std::printf("dim             %u\n", p.dim);
  std::printf("heads           %u (kv %u, head_dim %u)\n", p.n_heads, p.n_kv_heads, p.head_dim);
  std::printf("ffn_dim         %u\n", p.ffn_dim);
  std::printf("vocab           %u (tokenizer \"%s\")\n", p.vocab_size, p.tokenizer_model.c_str());
  std::printf("context         %u\n", p.context_length);
  std::printf("rope theta      %g\n", p.rope_theta);
  std::printf("norm eps        %g\n", p.norm_eps);
  std::printf("tied output     %s\n", p.tied_output ? "yes" : "no");
}

class InspectCommand : public Command {
 public:
  explicit InspectCommand(CLI::App& parent) {
    app = parent.add_subcommand("inspect", "Show what a store or a GGUF file holds");
    app->add_option("path", path_, "a store folder or a GGUF file")
        ->required()
        ->check(CLI::ExistingPath);
    app->add_flag("--json", json_, "print JSON on stdout instead of tables");
    app->description(
        "Show the preset and hyper-parameters, the tensor table (name, type, shape as ne[0]x"
        "ne[1] with the row length first, bytes), bytes per quant type and the total. For a "
        "store also the fragments and the manifest digest (the manifest is checked, the "
        "fragment files are not: use verify); for a GGUF also its version, alignment, data "
        "offset, metadata key count and the xxh3-128 of the whole file (the gguf.xxh3 that a "
        "store split from it records).\n\n"
        "Examples:\n"
        "  fragment_tool inspect /models/mistral-7b.store\n"
        "  fragment_tool inspect model.gguf --json | jq .bytes_per_type");
  }

  int run() override {
    json out;
    std::vector<Row> rows;
    if (std::filesystem::is_directory(path_)) {
      Manifest m = manifest_load(path_);
      json frags = json::array();
      for (const ManifestFragment& f : m.fragments) {
        for (const ManifestTensor& t : f.tensors) rows.push_back({t.name, t.type, t.ne, t.size, f.file});
        frags.push_back(json{{"file", f.file},
                             {"role", fragment_role_name(static_cast<uint32_t>(f.role))},
                             {"layer", f.layer},
                             {"size", f.size},
                             {"tensors", f.tensors.size()},
                             {"xxh3", f.xxh3.hex()}});
      }
      out = json{{"kind", "store"},
                 {"path", path_},
                 {"digest", m.digest.hex()},
                 {"preset", m.params.preset},
                 {"params", params_json(m.params)},
                 {"metadata_keys", m.metadata.size()},
                 {"fragments", frags},
                 {"gguf", json{{"version", m.gguf_version},
                               {"alignment", m.gguf_alignment},
                               {"size", m.gguf_size},
                               {"data_offset", m.gguf_data_offset},
                               {"xxh3", m.gguf_xxh3.hex()}}}};
      if (!json_) {
        std::printf("store           %s\n", path_.c_str());
        std::printf("digest          %s\n", m.digest.hex().c_str());
        print_params(m.params);
        std::printf("fragments       %zu (+ manifest.json)\n", m.fragments.size());
        std::printf("original GGUF   v%u, %llu bytes, alignment %llu, %zu metadata keys\n",
                    m.gguf_version, static_cast<unsigned long long>(m.gguf_size),
                    static_cast<unsigned long long>(m.gguf_alignment), m.metadata.size());
      }
    } else {
      GgufFile g = GgufFile::open(path_);
      // The file's own digest: the xxh3-128 a store split from it records as gguf.xxh3
      // (and join checks), so a GGUF and a store can be matched.
      const Hash128 file_hash = xxh3_128(g.file_data(), g.file_size());
      out = json{{"kind", "gguf"},
                 {"path", path_},
                 {"gguf", json{{"version", g.version()},
                               {"alignment", g.alignment()},
                               {"size", g.file_size()},
                               {"data_offset", g.data_offset()},
                               {"kv_count", g.metadata().size()},
                               {"tensor_count", g.tensors().size()},
                               {"xxh3", file_hash.hex()}}}};
      for (const GgufTensorInfo& t : g.tensors()) rows.push_back({t.name, t.type, t.ne, t.size, ""});
      std::string arch_error;
      ModelParams params;
      try {
        params = detect_architecture(g.metadata(), g.tensor_descs());
        out["preset"] = params.preset;
        out["params"] = params_json(params);
      } catch (const Error& e) {
        arch_error = e.what();
        out["preset"] = nullptr;
        out["arch_error"] = arch_error;
      }
      if (!json_) {
        std::printf("gguf            %s\n", path_.c_str());
        std::printf("version         %u\n", g.version());
        std::printf("alignment       %llu\n", static_cast<unsigned long long>(g.alignment()));
        std::printf("data offset     %llu\n", static_cast<unsigned long long>(g.data_offset()));
        std::printf("metadata keys   %zu\n", g.metadata().size());
        std::printf("xxh3-128        %s (the gguf.xxh3 of a store split from it)\n",
                    file_hash.hex().c_str());
        if (arch_error.empty()) {
          print_params(params);
        } else {
          std::printf("preset          (not supported: %s)\n", arch_error.c_str());
        }
      }
    }
    report_tensors(rows, out);
    if (json_) std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }

 private:
  void report_tensors(const std::vector<Row>& rows, json& out) const {
    std::map<std::string, std::pair<uint64_t, uint64_t>> per_type;  // count, bytes
    uint64_t total = 0;
    json tensors = json::array();
    for (const Row& r : rows) {
      std::string type = type_name(static_cast<uint32_t>(r.type));
      per_type[type].first += 1;
      per_type[type].second += r.bytes;
      total += r.bytes;
      json t{{"name", r.name}, {"type", type}, {"ne", r.ne}, {"bytes", r.bytes}};
      if (!r.fragment.empty()) t["fragment"] = r.fragment;
      tensors.push_back(std::move(t));
    }
    json types = json::object();
    for (const auto& [type, v] : per_type) types[type] = json{{"tensors", v.first}, {"bytes", v.second}};
    out["tensors"] = std::move(tensors);
    out["bytes_per_type"] = std::move(types);
    out["tensor_bytes"] = total;
    if (json_) return;
    std::printf("\n%-32s %-6s %-18s %14s  %s\n", "tensor", "type", "shape (ne)", "bytes",
                rows.empty() || rows[0].fragment.empty() ? "" : "fragment");
    for (const Row& r : rows) {
      std::printf("%-32s %-6s %-18s %14llu  %s\n", r.name.c_str(),
                  type_name(static_cast<uint32_t>(r.type)).c_str(), shape(r.ne).c_str(),
                  static_cast<unsigned long long>(r.bytes), r.fragment.c_str());
    }
    std::printf("\nbytes per type\n");
    for (const auto& [type, v] : per_type) {
      std::printf("  %-6s %5llu tensors %14llu bytes (%s)\n", type.c_str(),
                  static_cast<unsigned long long>(v.first), static_cast<unsigned long long>(v.second),
                  format_bytes(static_cast<double>(v.second)).c_str());
    }
    std::printf("  total  %5zu tensors %14llu bytes (%s)\n", rows.size(),
                static_cast<unsigned long long>(total), format_bytes(static_cast<double>(total)).c_str());
  }

  std::string path_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> make_inspect(CLI::App& parent, const GlobalOptions&) {
  return std::make_unique<InspectCommand>(parent);
}

}  // namespace lw::tool
