#include "client/connection.h"

#include <capnp/rpc.h>

#include <map>
#include <optional>

#include "common/error.h"
#include "schema/rpc_error.h"
#include "schema/wire_convert.h"

namespace lw {

struct ServerConnection::Rpc {
  // Declaration order is destruction order reversed: capabilities go before the system.
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyVatNetwork> network;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> system;
  std::optional<schema::LayerServer::Client> server;
  std::optional<schema::Connection::Client> connection;
  std::map<uint32_t, schema::Session::Client> sessions;
  uint32_t next_handle = 1;
};

namespace {

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

ServerDescription describe(schema::HandshakeResponse::Reader r) {
  ServerDescription d;
  d.server_name = text(r.getServerName());
  d.architecture = text(r.getArchitecture());
  d.manifest_digest = text(r.getManifestDigest());
  d.layer_begin = static_cast<int>(r.getLayerBegin());
  d.layer_end = static_cast<int>(r.getLayerEnd());
  d.hidden_size = r.getHiddenSize();
  auto caps = r.getCapabilities();
  d.backend = text(caps.getBackend());
  d.device = text(caps.getDevice());
  for (auto x : caps.getDtypes()) d.dtypes.push_back(static_cast<WireDtype>(x));
  for (auto x : caps.getEncodings()) d.encodings.push_back(static_cast<WireEncoding>(x));
  auto l = r.getLimits();
  d.max_tokens_per_call = l.getMaxTokensPerCall();
  d.max_message_bytes = l.getMaxMessageBytes();
  d.max_sessions = l.getMaxSessions();
  d.kv_budget_tokens = l.getKvBudgetTokens();
  d.session_ttl_seconds = l.getSessionTtlSeconds();
  return d;
}

// Replies can be as large as one tensor of kWireMaxDataBytes plus framing.
capnp::ReaderOptions reply_reader_options() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = (kWireMaxDataBytes + (1u << 20)) / sizeof(capnp::word) * 2;
  return o;
}

}  // namespace

std::string ServerConnection::label() const { return spec_.name + " (" + spec_.rpc + ")"; }

void ServerConnection::rethrow(const kj::Exception& e, const std::string& what) {
  if (std::optional<Error> err = error_from_rpc_exception(e)) {
    throw Error(err->code(), "server " + label() + ": " + err->message());
  }
  std::string desc(e.getDescription().cStr(), e.getDescription().size());
  throw Error(ErrorCode::kClientConnect, "server " + label() + ": " + what + " failed: " + desc);
}

template <typename T>
T ServerConnection::wait(kj::Promise<T>&& promise, const std::string& what,
                         uint32_t timeout_ms) {
  bool timed_out = false;
  auto timeout = loop_.io.provider->getTimer()
                     .afterDelay(timeout_ms * kj::MILLISECONDS)
                     .then([&timed_out]() -> kj::Promise<T> {
                       timed_out = true;
                       return KJ_EXCEPTION(DISCONNECTED, "timed out");
                     });
  try {
    return promise.exclusiveJoin(kj::mv(timeout)).wait(loop_.io.waitScope);
  } catch (const kj::Exception& e) {
    if (timed_out) {
      throw Error(ErrorCode::kClientConnect, "server " + label() + ": " + what +
                                                 " timed out after " +
                                                 std::to_string(timeout_ms) + " ms");
    }
    rethrow(e, what);
  }
}

ServerConnection::ServerConnection(RpcLoop& loop, const ServerSpec& spec,
                                   const HandshakeParams& params)
    : loop_(loop), spec_(spec), call_timeout_ms_(params.call_timeout_ms),
      rpc_(std::make_unique<Rpc>()) {
  parse_host_port(spec.rpc, "server " + spec.name + " rpc");
  auto& network = loop_.io.provider->getNetwork();
  kj::Own<kj::NetworkAddress> address = wait<kj::Own<kj::NetworkAddress>>(
      network.parseAddress(spec.rpc.c_str()), "address lookup", params.connect_timeout_ms);
  rpc_->stream = wait<kj::Own<kj::AsyncIoStream>>(address->connect(), "connect",
                                                  params.connect_timeout_ms);
  rpc_->network = kj::heap<capnp::TwoPartyVatNetwork>(
      *rpc_->stream, capnp::rpc::twoparty::Side::CLIENT, reply_reader_options());
  rpc_->system = kj::heap(capnp::makeRpcClient(*rpc_->network));
  capnp::MallocMessageBuilder vat;
  auto vat_id = vat.initRoot<capnp::rpc::twoparty::VatId>();
  vat_id.setSide(capnp::rpc::twoparty::Side::SERVER);
  rpc_->server = rpc_->system->bootstrap(vat_id).castAs<schema::LayerServer>();

  auto req = rpc_->server->handshakeRequest();
  auto r = req.initRequest();
  r.setProtocolVersion(schema::PROTOCOL_VERSION);
  r.setClientName(params.client_name);
  r.setArchitecture(params.architecture);
  r.setManifestDigest(params.manifest_digest);
  r.setAuthToken(kj::arrayPtr(reinterpret_cast<const kj::byte*>(params.auth_token.data()),
                              params.auth_token.size()));
  auto dtypes = r.initWantedDtypes(3);
  dtypes.set(0, schema::Dtype::F32);
  dtypes.set(1, schema::Dtype::F16);
  dtypes.set(2, schema::Dtype::BF16);
  auto encodings = r.initWantedEncodings(params.reply_encodings.size());
  for (size_t i = 0; i < params.reply_encodings.size(); ++i) {
    encodings.set(i, static_cast<schema::Encoding>(params.reply_encodings[i]));
  }
  auto resp = wait<capnp::Response<schema::LayerServer::HandshakeResults>>(
      req.send(), "handshake", params.connect_timeout_ms);
  auto hr = resp.getResponse();
  try {
    check_protocol_version(schema::PROTOCOL_VERSION, hr.getProtocolVersion());
  } catch (const Error& e) {
    throw Error(e.code(), "server " + label() + ": " + e.message());
  }
  description_ = describe(hr);
  if (description_.manifest_digest != params.manifest_digest) {
    throw Error(ErrorCode::kSrvDigest,
                "server " + label() + " holds manifest digest " + description_.manifest_digest +
                    " but the client's store has " + params.manifest_digest +
                    "; both must use the same fragment store");
  }
  if (!params.architecture.empty() && description_.architecture != params.architecture) {
    throw Error(ErrorCode::kSrvArchitecture,
                "server " + label() + " serves architecture \"" + description_.architecture +
                    "\" but the client expects \"" + params.architecture + "\"");
  }
  rpc_->connection = resp.getConnection();
}

ServerConnection::~ServerConnection() {
  // Dropping the capabilities (and the connection) frees the server-side sessions.
  rpc_.reset();
}

uint32_t ServerConnection::open_session(uint32_t max_tokens) {
  auto req = rpc_->connection->openSessionRequest();
  req.setMaxTokens(max_tokens);
  auto resp = wait<capnp::Response<schema::Connection::OpenSessionResults>>(
      req.send(), "openSession", call_timeout_ms_);
  const uint32_t handle = rpc_->next_handle++;
  rpc_->sessions.emplace(handle, resp.getSession());
  return handle;
}

void ServerConnection::close_session(uint32_t handle) {
  auto it = rpc_->sessions.find(handle);
  if (it == rpc_->sessions.end()) return;
  try {
    wait<capnp::Response<schema::Session::CloseResults>>(it->second.closeRequest().send(),
                                                          "close", call_timeout_ms_);
  } catch (const Error&) {
    // Best effort: dropping the capability below frees the session as well.
  }
  rpc_->sessions.erase(handle);
}

ForwardReply ServerConnection::forward(uint32_t handle, uint32_t start_pos,
                                       const WireTensor& request, WireDtype reply_dtype,
                                       WireCodec& codec, uint64_t max_reply_bytes) {
  auto it = rpc_->sessions.find(handle);
  LW_CHECK(it != rpc_->sessions.end(), "unknown session handle " + std::to_string(handle));
  auto req = it->second.forwardRequest();
  req.setStartPos(start_pos);
  write_tensor(req.initHidden(), request);
  req.setReplyDtype(static_cast<schema::Dtype>(reply_dtype));
  auto resp = wait<capnp::Response<schema::Session::ForwardResults>>(req.send(), "forward",
                                                                      call_timeout_ms_);
  const uint64_t rows = request.shape.empty() ? 0 : request.shape[0];
  DecodeLimits limits;
  limits.max_raw_bytes = max_reply_bytes;
  limits.expected_last_dim = description_.hidden_size;
  limits.max_rows = rows;
  ForwardReply out;
  try {
    const WireTensorView view = view_tensor(resp.getHidden(), limits);
    if (view.shape.size() != 2 || view.shape[0] != rows) {
      throw Error(ErrorCode::kWireShape,
                  "reply has " + std::to_string(view.shape.empty() ? 0 : view.shape[0]) +
                      " rows, the request had " + std::to_string(rows));
    }
    out.hidden.resize(rows * description_.hidden_size);
    codec.decode_into(view, limits, out.hidden, &out.received);
  } catch (const Error& e) {
    throw Error(e.code(), "server " + label() + ": forward reply: " + e.message());
  }
  out.length = resp.getLength();
  out.server_total_ns = resp.getTimings().getTotalNs();
  out.server_compute_ns = resp.getTimings().getComputeNs();
  return out;
}

ServerInfoSnapshot ServerConnection::info() {
  auto resp = wait<capnp::Response<schema::Connection::InfoResults>>(
      rpc_->connection->infoRequest().send(), "info", call_timeout_ms_);
  auto i = resp.getInfo();
  ServerInfoSnapshot s;
  s.description = describe(i.getDescription());
  s.open_sessions = i.getOpenSessions();
  s.kv_used_tokens = i.getKvUsedTokens();
  s.status = text(i.getStatus().getStatus());
  s.reason = text(i.getStatus().getReason());
  return s;
}

}  // namespace lw
