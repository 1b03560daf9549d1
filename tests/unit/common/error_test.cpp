#include "common/error.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace lw {
namespace {

TEST(ErrorTest, CatalogueIdsAreUniqueAndWellFormed) {
  size_t count = 0;
  const ErrorInfo* rows = error_catalogue(&count);
  ASSERT_GT(count, 10u);
  std::set<std::string_view> seen;
  const std::regex pattern("LW-[A-Z]+-[0-9]{3}");
  for (size_t i = 0; i < count; ++i) {
    EXPECT_TRUE(std::regex_match(std::string(rows[i].id), pattern)) << rows[i].id;
    EXPECT_TRUE(seen.insert(rows[i].id).second) << "duplicate " << rows[i].id;
    EXPECT_EQ(static_cast<size_t>(rows[i].code), i);
    EXPECT_FALSE(rows[i].cause.empty());
  }
}

TEST(ErrorTest, WhatCarriesCodeAndMessage) {
  Error e(ErrorCode::kGgufMagic, "model.gguf: magic is 0x00000000");
  EXPECT_STREQ(e.what(), "LW-GGUF-001: model.gguf: magic is 0x00000000");
  EXPECT_EQ(e.id(), "LW-GGUF-001");
  EXPECT_EQ(e.kind(), ErrorKind::BadInput);
  EXPECT_EQ(e.message(), "model.gguf: magic is 0x00000000");
  EXPECT_EQ(Error(ErrorCode::kKvExhausted, "x").kind(), ErrorKind::Overloaded);
}

}  // namespace
}  // namespace lw
