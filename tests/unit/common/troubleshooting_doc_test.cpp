// docs/TROUBLESHOOTING.md documents exactly the codes of the catalogue: one "### LW-…"
// entry per code of common/error_codes.h, with the catalogue's kind and a non-empty
// symptom, cause and fix. Both files are read at run time from the source tree, so a code
// added to the catalogue without its entry (or an entry left for a code that does not
// exist) fails here; the compiled catalogue is checked against the header text too.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "common/error.h"
#include "tests/support/test_support.h"

namespace lw {
namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// id -> kind name as written in the X-macro rows ("Io", "BadInput", ...).
std::map<std::string, std::string> catalogue_from_header() {
  const std::string text = read_text(test::source_dir() / "common/error_codes.h");
  const std::regex row(R"re(X\(\s*k\w+\s*,\s*"(LW-[A-Z]+-[0-9]{3})"\s*,\s*(\w+)\s*,)re");
  std::map<std::string, std::string> ids;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), row); it != std::sregex_iterator();
       ++it) {
    EXPECT_TRUE(ids.emplace((*it)[1], (*it)[2]).second) << "duplicate row " << (*it)[1];
  }
  return ids;
}

std::string kind_row_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadInput: return "BadInput";
    case ErrorKind::Corrupt: return "Corrupt";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::Io: return "Io";
    case ErrorKind::Unsupported: return "Unsupported";
    case ErrorKind::Overloaded: return "Overloaded";
    case ErrorKind::Internal: return "Internal";
  }
  return "?";
}

struct DocEntry {
  std::string kind, symptom, cause, fix;
  int line = 0;
};

// Entries of the doc: "### LW-AREA-NNN" headings, each followed (until the next heading) by
// "- **Kind:** `K`", "- **Symptom:** …", "- **Cause:** …" and "- **Fix:** …" items.
std::map<std::string, DocEntry> entries_from_doc(std::vector<std::string>* problems) {
  std::istringstream in(read_text(test::source_dir() / "docs/TROUBLESHOOTING.md"));
  const std::regex heading(R"(^### (LW-[A-Z]+-[0-9]{3})\s*$)");
  const std::regex item(R"(^- \*\*(Kind|Symptom|Cause|Fix):\*\*\s*(.*)$)");
  std::map<std::string, DocEntry> entries;
  DocEntry* current = nullptr;
  std::string* last_field = nullptr;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::smatch m;
    if (line.rfind("#", 0) == 0) {
      current = nullptr;
      last_field = nullptr;
      if (std::regex_match(line, m, heading)) {
        auto [it, fresh] = entries.emplace(m[1], DocEntry{});
        if (!fresh) problems->push_back("line " + std::to_string(number) + ": " + m[1].str() +
                                        " documented twice");
        current = &it->second;
        current->line = number;
      } else if (line.rfind("### LW", 0) == 0) {
        problems->push_back("line " + std::to_string(number) + ": malformed heading: " + line);
      }
      continue;
    }
    if (current == nullptr) continue;
    if (std::regex_match(line, m, item)) {
      const std::string field = m[1];
      last_field = field == "Kind"      ? &current->kind
                   : field == "Symptom" ? &current->symptom
                   : field == "Cause"   ? &current->cause
                                        : &current->fix;
      *last_field = m[2];
    } else if (last_field != nullptr && line.rfind("  ", 0) == 0) {
      *last_field += " " + line.substr(2);  // continuation line of the item
    } else {
      last_field = nullptr;
    }
  }
  return entries;
}

TEST(TroubleshootingDocTest, HeaderTextAndCompiledCatalogueAgree) {
  const std::map<std::string, std::string> header = catalogue_from_header();
  size_t count = 0;
  const ErrorInfo* rows = error_catalogue(&count);
  ASSERT_EQ(header.size(), count) << "common/error_codes.h rows vs the compiled catalogue";
  for (size_t i = 0; i < count; ++i) {
    auto it = header.find(std::string(rows[i].id));
    ASSERT_NE(it, header.end()) << rows[i].id;
    EXPECT_EQ(it->second, kind_row_name(rows[i].kind)) << rows[i].id;
  }
}

TEST(TroubleshootingDocTest, EveryCatalogueCodeHasExactlyOneCompleteEntry) {
  const std::map<std::string, std::string> catalogue = catalogue_from_header();
  ASSERT_GT(catalogue.size(), 40u);
  std::vector<std::string> problems;
  const std::map<std::string, DocEntry> doc = entries_from_doc(&problems);
  for (const auto& [id, kind] : catalogue) {
    auto it = doc.find(id);
    if (it == doc.end()) {
      problems.push_back(id + " (kind " + kind + ") has no \"### " + id +
                         "\" entry in docs/TROUBLESHOOTING.md");
      continue;
    }
    const DocEntry& e = it->second;
    const std::string at = id + " (line " + std::to_string(e.line) + ")";
    if (e.kind.rfind("`" + kind + "`", 0) != 0) {
      problems.push_back(at + ": kind is \"" + e.kind + "\", the catalogue says `" + kind + "`");
    }
    for (const auto& [name, text] : {std::pair{"Symptom", &e.symptom}, std::pair{"Cause", &e.cause},
                                     std::pair{"Fix", &e.fix}}) {
      if (text->size() < 10) problems.push_back(at + ": missing or empty **" + name + ":**");
    }
  }
  for (const auto& [id, e] : doc) {
    if (!catalogue.count(id)) {
      problems.push_back(id + " (line " + std::to_string(e.line) +
                         ") is documented but is not in common/error_codes.h");
    }
  }
  std::string all;
  for (const std::string& p : problems) all += "\n  " + p;
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems:" << all;
}

}  // namespace
}  // namespace lw
