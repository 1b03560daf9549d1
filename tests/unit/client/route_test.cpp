// route_build: ordered hops from announced ranges; overlaps, config mismatches and gaps are
// refused naming the servers and the ranges.
#include <gtest/gtest.h>

#include "client/route.h"
#include "common/error.h"

namespace lw {
namespace {

AnnouncedRange a(size_t group, int begin, int end, std::string expected = "") {
  return AnnouncedRange{group, "s" + std::to_string(group), std::move(expected), begin, end};
}

std::string error_of(std::vector<AnnouncedRange> v, int n, ErrorCode* code) {
  try {
    route_build(std::move(v), n);
  } catch (const Error& e) {
    *code = e.code();
    return e.what();
  }
  return "";
}

TEST(Route, OrdersHopsByLayer) {
  const auto hops = route_build({a(0, 20, 32), a(1, 0, 10, "0-9"), a(2, 10, 20)}, 32);
  ASSERT_EQ(hops.size(), 3u);
  EXPECT_EQ(hops[0].group, 1u);
  EXPECT_EQ(hops[1].group, 2u);
  EXPECT_EQ(hops[2].group, 0u);
  EXPECT_EQ(hops[2].begin, 20);
  EXPECT_EQ(hops[2].end, 32);
  EXPECT_EQ(route_build({a(0, 0, 1, "0")}, 1).size(), 1u);
}

TEST(Route, MissingRangesAreNamed) {
  ErrorCode code{};
  std::string m = error_of({a(0, 0, 3), a(1, 6, 9)}, 12, &code);
  EXPECT_EQ(code, ErrorCode::kClientCoverage);
  EXPECT_NE(m.find("layers 3-5, 9-11 "), std::string::npos) << m;
  m = error_of({a(0, 1, 12)}, 12, &code);
  EXPECT_EQ(code, ErrorCode::kClientCoverage);
  EXPECT_NE(m.find("layers 0 "), std::string::npos) << m;
}

TEST(Route, OverlapAndMismatchAreRefused) {
  ErrorCode code{};
  std::string m = error_of({a(0, 0, 6), a(1, 5, 12)}, 12, &code);
  EXPECT_EQ(code, ErrorCode::kClientRange);
  EXPECT_NE(m.find("s0 (layers 0-5)"), std::string::npos) << m;
  EXPECT_NE(m.find("s1 (layers 5-11)"), std::string::npos) << m;
  m = error_of({a(0, 0, 6, "0-4"), a(1, 6, 12)}, 12, &code);
  EXPECT_EQ(code, ErrorCode::kClientRange);
  EXPECT_NE(m.find("serves layers 0-5 but the config expects layers 0-4"), std::string::npos)
      << m;
  m = error_of({a(0, 0, 13)}, 12, &code);
  EXPECT_EQ(code, ErrorCode::kClientRange);
  EXPECT_NE(m.find("12 layers"), std::string::npos) << m;
  m = error_of({a(0, 3, 3)}, 12, &code);
  EXPECT_EQ(code, ErrorCode::kClientRange);
}

}  // namespace
}  // namespace lw
