#include "common/hash.h"

#include <gtest/gtest.h>

#include <string>

namespace lw {
namespace {

TEST(HashTest, StreamingEqualsOneShot) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + 7);
  Hasher128 h;
  for (size_t off = 0; off < data.size(); off += 777) {
    h.update(data.data() + off, std::min<size_t>(777, data.size() - off));
  }
  EXPECT_EQ(h.digest(), xxh3_128(data.data(), data.size()));
  data[5000] ^= 1;
  EXPECT_NE(h.digest(), xxh3_128(data.data(), data.size()));
}

TEST(HashTest, HexRoundTripAndRejects) {
  Hash128 h = xxh3_128("layerwire", 9);
  Hash128 back;
  ASSERT_TRUE(Hash128::from_hex(h.hex(), &back));
  EXPECT_EQ(back, h);
  EXPECT_EQ(h.hex().size(), 32u);
  EXPECT_FALSE(Hash128::from_hex("xyz", &back));
  EXPECT_FALSE(Hash128::from_hex(std::string(32, 'G'), &back));
}

TEST(HashTest, KnownValueOfEmptyInput) {
  // XXH3_128bits of the empty input, from the xxHash reference test vectors.
  EXPECT_EQ(xxh3_128(nullptr, 0).hex(), "99aa06d3014798d86001c324468d497f");
}

}  // namespace
}  // namespace lw
