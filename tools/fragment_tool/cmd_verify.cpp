// fragment_tool verify: check a store (or the fragments one host needs) against its manifest.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "fragments/store.h"
#include "tools/fragment_tool/commands.h"
#include "tools/fragment_tool/progress.h"

namespace lw::tool {
namespace {

class VerifyCommand : public Command {
 public:
  VerifyCommand(CLI::App& parent, const GlobalOptions& global) : global_(global) {
    app = parent.add_subcommand("verify", "Check every file and tensor of a store");
    app->add_option("store", dir_, "the store folder")->required()->check(CLI::ExistingDirectory);
    app->add_flag("-q,--quick", quick_, "sizes, headers and directories only (no hashing)");
    jobs_ = std::max(1u, std::thread::hardware_concurrency());
    app->add_option("-j,--jobs", jobs_, "files hashed in parallel")
        ->check(CLI::Range(1u, 256u))
        ->capture_default_str();
    app->add_option("--layers", layers_,
                    "only these layers' fragments, \"A-B\" (inclusive) or \"N\", plus the head "
                    "(embedding, output) unless --no-head");
    app->add_flag("--no-head", no_head_, "with --layers: skip embedding.lwf and output.lwf");
    app->add_flag("--head-only", head_only_,
                  "only embedding.lwf and output.lwf (what a client needs)")
        ->excludes("--layers")
        ->excludes("--no-head");
    app->add_flag("--json", json_, "print the report as JSON on stdout (no progress)");
    app->description(
        "Check a fragment store against its manifest.json: the manifest's digest and fields, "
        "then every selected fragment file's existence, size, header and tensor directory and "
        "(unless --quick) the xxh3-128 of every tensor and of every whole file. Files not in "
        "the manifest are reported when the whole store is checked. Lists every problem with "
        "its code, file and tensor; exits 0 only when all is intact, 1 otherwise.\n"
        "With --layers (or --head-only) only the manifest and the selected fragments are "
        "checked, and other files are neither required nor reported: a host checks what it "
        "serves.\n\n"
        "Examples:\n"
        "  fragment_tool verify /models/mistral-7b.store\n"
        "  fragment_tool verify store --quick\n"
        "  fragment_tool verify store --layers 0-15 --no-head --jobs 4\n"
        "  fragment_tool verify store --json | jq .problems");
  }

  int run() override {
    try {
      return check();
    } catch (const Error& e) {
      // A damaged manifest is a problem verify found, reported like any other (exit 1).
      if (e.code() != ErrorCode::kManifestParse && e.code() != ErrorCode::kManifestDigest) throw;
      VerifyReport r;
      r.problems.push_back({e.code(), kManifestFile, "", e.message()});
      print(r);
      return kExitProblems;
    }
  }

 private:
  int check() {
    VerifyOptions options;
    options.quick = quick_;
    options.jobs = jobs_;
    if (!layers_.empty() || head_only_) {
      options.selection.all = false;
      options.selection.head = !no_head_;
      if (!layers_.empty()) {
        Manifest m = manifest_load(dir_);
        try {
          options.selection.layers = LayerRange::parse(layers_, static_cast<int>(m.params.n_layers));
        } catch (const Error& e) {
          throw UsageError("--layers: " + std::string(e.what()));
        }
      }
    } else if (no_head_) {
      throw UsageError("--no-head needs --layers");
    }
    ProgressBar bar("verify", !global_.no_progress && !json_);
    options.progress = bar.fn();
    VerifyReport r = store_verify(dir_, options);
    bar.finish();
    print(r);
    return r.ok() ? kExitOk : kExitProblems;
  }

  void print(const VerifyReport& r) const {
    double gbps = r.seconds > 0 ? static_cast<double>(r.bytes_checked) / r.seconds / 1e9 : 0;
    if (json_) {
      nlohmann::json problems = nlohmann::json::array(), warnings = nlohmann::json::array();
      auto row = [](const VerifyProblem& p) {
        return nlohmann::json{{"code", error_info(p.code).id},
                              {"file", p.file},
                              {"tensor", p.tensor},
                              {"detail", p.detail}};
      };
      for (const VerifyProblem& p : r.problems) problems.push_back(row(p));
      for (const VerifyProblem& p : r.warnings) warnings.push_back(row(p));
      nlohmann::json out{{"store", dir_},
                         {"ok", r.ok()},
                         {"quick", quick_},
                         {"jobs", jobs_},
                         {"files_checked", r.files_checked},
                         {"bytes_checked", r.bytes_checked},
                         {"seconds", r.seconds},
                         {"gb_per_s", gbps},
                         {"problems", problems},
                         {"warnings", warnings}};
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      for (const VerifyProblem& p : r.problems) {
        std::printf("%s  %s%s%s: %s\n", std::string(error_info(p.code).id).c_str(), p.file.c_str(),
                    p.tensor.empty() ? "" : "  tensor ", p.tensor.c_str(), p.detail.c_str());
      }
      for (const VerifyProblem& p : r.warnings) {
        std::printf("warning: %s  %s: %s\n", std::string(error_info(p.code).id).c_str(),
                    p.file.c_str(), p.detail.c_str());
      }
      std::string verdict =
          r.ok() ? "OK" : "FAILED (" + std::to_string(r.problems.size()) + " problems)";
      std::printf("verify %s: %s: %llu files, %s hashed in %.2f s (%.2f GB/s, %u jobs)%s\n",
                  dir_.c_str(), verdict.c_str(), static_cast<unsigned long long>(r.files_checked),
                  format_bytes(static_cast<double>(r.bytes_checked)).c_str(), r.seconds, gbps,
                  jobs_, quick_ ? ", quick: sizes, headers and directories only" : "");
    }
  }

  const GlobalOptions& global_;
  std::string dir_, layers_;
  bool quick_ = false, no_head_ = false, head_only_ = false, json_ = false;
  unsigned jobs_ = 1;
};

}  // namespace

std::unique_ptr<Command> make_verify(CLI::App& parent, const GlobalOptions& global) {
  return std::make_unique<VerifyCommand>(parent, global);
}

}  // namespace lw::tool
