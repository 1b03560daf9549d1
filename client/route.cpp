#include "client/route.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"

namespace lw {
namespace {

// Parses the config's "A-B" / "N" (syntax already checked by the config parser).
bool parse_expected(const std::string& text, int* begin, int* end) {
  const size_t dash = text.find('-');
  int a = 0, b = 0;
  auto num = [](std::string_view s, int* out) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
  };
  if (dash == std::string::npos) {
    if (!num(text, &a)) return false;
    b = a;
  } else if (!num(std::string_view(text).substr(0, dash), &a) ||
             !num(std::string_view(text).substr(dash + 1), &b)) {
    return false;
  }
  *begin = a;
  *end = b + 1;
  return true;
}

}  // namespace

std::string layer_range_text(int begin, int end) {
  if (end - begin == 1) return std::to_string(begin);
  return std::to_string(begin) + "-" + std::to_string(end - 1);
}

std::vector<Hop> route_build(std::vector<AnnouncedRange> announced, int n_layers) {
  for (const AnnouncedRange& a : announced) {
    if (a.begin < 0 || a.end <= a.begin || a.end > n_layers) {
      throw Error(ErrorCode::kClientRange,
                  "server " + a.server + " announces layers [" + std::to_string(a.begin) + ", " +
                      std::to_string(a.end) + "), which is empty or outside the model's " +
                      std::to_string(n_layers) + " layers");
    }
    if (!a.expected.empty()) {
      int b = 0, e = 0;
      if (!parse_expected(a.expected, &b, &e) || b != a.begin || e != a.end) {
        throw Error(ErrorCode::kClientRange,
                    "server " + a.server + " serves layers " + layer_range_text(a.begin, a.end) +
                        " but the config expects layers " + a.expected);
      }
    }
  }
  std::stable_sort(announced.begin(), announced.end(),
                   [](const AnnouncedRange& x, const AnnouncedRange& y) {
                     return x.begin < y.begin;
                   });
  for (size_t i = 1; i < announced.size(); ++i) {
    const AnnouncedRange& p = announced[i - 1];
    const AnnouncedRange& q = announced[i];
    if (q.begin < p.end) {
      throw Error(ErrorCode::kClientRange,
                  "servers " + p.server + " (layers " + layer_range_text(p.begin, p.end) +
                      ") and " + q.server + " (layers " + layer_range_text(q.begin, q.end) +
                      ") overlap; list a server that serves the same layers as a replica "
                      "instead");
    }
  }
  std::vector<std::string> missing;
  int next = 0;
  for (const AnnouncedRange& a : announced) {
    if (a.begin > next) missing.push_back(layer_range_text(next, a.begin));
    next = a.end;
  }
  if (next < n_layers) missing.push_back(layer_range_text(next, n_layers));
  if (!missing.empty()) {
    std::string list;
    for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw Error(ErrorCode::kClientCoverage,
                "layers " + list + " of the model's " + std::to_string(n_layers) +
                    " layers are served by no server; start servers for them or fix the "
                    "\"layers\" of the servers in the config");
  }
  std::vector<Hop> hops;
  for (const AnnouncedRange& a : announced) hops.push_back(Hop{a.group, a.begin, a.end});
  return hops;
}

}  // namespace lw
