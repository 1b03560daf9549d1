// What RemoteLayerExecutor refuses at startup, each with a message naming the server and the
// values: a server holding another manifest (digest), another architecture, layers nobody
// serves, a range other than the config's, a wrong or missing auth token, an unreachable
// server.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "client/remote_executor.h"
#include "common/error.h"
#include "fragments/manifest.h"
#include "tests/integration/cluster_test_util.h"

namespace lw {
namespace {

class ClusterRefusalTest : public testing::Test {
 protected:
  void SetUp() override { store_ = test::make_tiny_store(dir_, "store"); }
  std::unique_ptr<test::LayerServerProcess> start(const std::string& name,
                                                  const std::string& layers,
                                                  std::vector<std::string> extra = {},
                                                  const std::filesystem::path& store = {}) {
    std::vector<std::string> args = {"--fragments-dir",
                                     (store.empty() ? store_ : store).string(), "--layers",
                                     layers};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<test::LayerServerProcess>(dir_, name, args);
    EXPECT_TRUE(p->running());
    return p;
  }
  // The error RemoteLayerExecutor(config) throws.
  Error refusal(const ClientConfig& c) {
    try {
      RemoteLayerExecutor ex(c);
    } catch (const Error& e) {
      return e;
    }
    ADD_FAILURE() << "the executor accepted the cluster";
    return Error(ErrorCode::kInternal, "none");
  }

  test::TempDir dir_;
  std::filesystem::path store_;
};

TEST_F(ClusterRefusalTest, DigestMismatchNamesServerAndBothDigests) {
  const auto other = test::make_tiny_store(dir_, "other", /*seed=*/99);
  auto a = start("a", "0-1");
  auto b = start("b", "2-3", {}, other);
  const Error e = refusal(test::cluster_config(
      store_, {ServerGroup{test::spec_of(*a), {}}, ServerGroup{test::spec_of(*b), {}}}));
  EXPECT_EQ(e.code(), ErrorCode::kSrvDigest) << e.what();
  const std::string m = e.what();
  EXPECT_NE(m.find("server b (" + b->rpc() + ")"), std::string::npos) << m;
  EXPECT_NE(m.find(manifest_load(store_).digest.hex()), std::string::npos) << m;
  EXPECT_NE(m.find(manifest_load(other).digest.hex()), std::string::npos) << m;
}

TEST_F(ClusterRefusalTest, ArchitectureMismatchNamesServerAndBothValues) {
  auto a = start("a", "0-3");
  ClientConfig c = test::cluster_config(store_, {ServerGroup{test::spec_of(*a), {}}});
  c.architecture = "mistral-7b";  // the tiny store is llama-generic
  const Error e = refusal(c);
  EXPECT_EQ(e.code(), ErrorCode::kSrvArchitecture) << e.what();
  const std::string m = e.what();
  EXPECT_NE(m.find("server a"), std::string::npos) << m;
  EXPECT_NE(m.find("mistral-7b"), std::string::npos) << m;
  EXPECT_NE(m.find("llama-generic"), std::string::npos) << m;
}

TEST_F(ClusterRefusalTest, MissingLayerRangeIsNamed) {
  auto a = start("a", "0");
  auto c = start("c", "3");
  const Error e = refusal(test::cluster_config(
      store_, {ServerGroup{test::spec_of(*a), {}}, ServerGroup{test::spec_of(*c), {}}}));
  EXPECT_EQ(e.code(), ErrorCode::kClientCoverage) << e.what();
  EXPECT_NE(std::string(e.what()).find("layers 1-2 of the model's 4 layers"), std::string::npos)
      << e.what();
}

TEST_F(ClusterRefusalTest, RangeOtherThanConfiguredAndBadReplicaAreRefused) {
  auto a = start("a", "0-1");
  auto b = start("b", "2-3");
  Error e = refusal(test::cluster_config(
      store_, {ServerGroup{test::spec_of(*a, "0-2"), {}}, ServerGroup{test::spec_of(*b), {}}}));
  EXPECT_EQ(e.code(), ErrorCode::kClientRange) << e.what();
  EXPECT_NE(std::string(e.what()).find("server a serves layers 0-1 but the config expects "
                                       "layers 0-2"),
            std::string::npos)
      << e.what();
  // A "replica" serving other layers than its primary.
  e = refusal(test::cluster_config(
      store_, {ServerGroup{test::spec_of(*a), {test::spec_of(*b)}},
               ServerGroup{test::spec_of(*b, "2-3"), {}}}));
  EXPECT_EQ(e.code(), ErrorCode::kClientRange) << e.what();
  EXPECT_NE(std::string(e.what()).find("a replica must serve the same layers"), std::string::npos)
      << e.what();
}

TEST_F(ClusterRefusalTest, WrongOrMissingTokenIsRefused) {
  const auto server_token = dir_ / "server.token";
  test::run_command("printf 'right-token\\n' > " + server_token.string());
  ::chmod(server_token.c_str(), 0600);
  auto a = start("a", "0-3", {"--auth-token-file", server_token.string()});
  ClientConfig c = test::cluster_config(store_, {ServerGroup{test::spec_of(*a), {}}});
  Error e = refusal(c);
  EXPECT_EQ(e.code(), ErrorCode::kAuthMissing) << e.what();
  EXPECT_NE(std::string(e.what()).find("server a"), std::string::npos) << e.what();
  const auto wrong = dir_ / "client.token";
  test::run_command("printf 'wrong-token\\n' > " + wrong.string());
  ::chmod(wrong.c_str(), 0600);
  c.auth_token_file = wrong.string();
  e = refusal(c);
  EXPECT_EQ(e.code(), ErrorCode::kAuthWrong) << e.what();
  EXPECT_EQ(std::string(e.what()).find("wrong-token"), std::string::npos) << e.what();
  c.auth_token_file = server_token.string();
  RemoteLayerExecutor ok(c);  // the right token is accepted
  EXPECT_EQ(ok.route().size(), 1u);
}

TEST_F(ClusterRefusalTest, UnreachableServerIsNamed) {
  auto a = start("a", "0-3");
  ServerSpec dead = test::spec_of(*a);
  a->stop(SIGKILL);
  const Error e = refusal(test::cluster_config(store_, {ServerGroup{dead, {}}}));
  EXPECT_EQ(e.code(), ErrorCode::kClientConnect) << e.what();
  EXPECT_NE(std::string(e.what()).find("a (" + dead.rpc + ")"), std::string::npos) << e.what();
}

}  // namespace
}  // namespace lw
