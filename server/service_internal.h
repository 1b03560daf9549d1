// Internal to server/service*.cpp: the capability classes of schema/layerwire.capnp and the
// wrapper every RPC method body runs in. Not for other modules (use server/service.h).
// Threading: event loop thread only.
#pragma once

#include <kj/function.h>

#include <cstdint>
#include <string>
#include <vector>

#include "schema/layerwire.capnp.h"
#include "server/service.h"

namespace lw {

// Runs one RPC method body: counts the call in flight until its promise is done (or
// cancelled), turns a thrown lw::Error (or a Cap'n Proto reader limit) into the RPC
// exception of its code, and counts every failure by code in the metrics. `method` names
// the call in logs.
kj::Promise<void> run_call(ServiceContext& ctx, const char* method,
                           kj::Function<kj::Promise<void>()> body);

// Reply formats a client accepts (its handshake's wantedDtypes / wantedEncodings, plus
// f32 and raw, which are always accepted).
struct ReplyFormats {
  bool zstd = false;
  bool shuffle_zstd = false;
};

class ConnectionImpl final : public schema::Connection::Server {
 public:
  ConnectionImpl(ServiceContext& ctx, uint64_t owner, ReplyFormats formats, std::string client);
  // Closes every session this connection opened (the client dropped it or disconnected).
  ~ConnectionImpl();

  kj::Promise<void> openSession(OpenSessionContext context) override;
  kj::Promise<void> info(InfoContext context) override;

 private:
  ServiceContext& ctx_;
  const uint64_t owner_;
  const ReplyFormats formats_;
  const std::string client_;
};

class SessionImpl final : public schema::Session::Server {
 public:
  SessionImpl(ServiceContext& ctx, uint64_t owner, uint64_t id, ReplyFormats formats);
  // Dropping the capability closes the session if it is still open.
  ~SessionImpl();

  kj::Promise<void> forward(ForwardContext context) override;
  kj::Promise<void> truncate(TruncateContext context) override;
  kj::Promise<void> close(CloseContext context) override;

 private:
  // The registry entry; LW-ENG-002 naming why the session is gone when it is not open.
  SessionRegistry::Entry& entry(const char* method);
  EncodeOptions reply_options(WireDtype dtype) const;

  ServiceContext& ctx_;
  const uint64_t owner_;
  const uint64_t id_;
  const ReplyFormats formats_;
};

// Fills a HandshakeResponse from the loaded model and the config.
void fill_description(const ServiceContext& ctx, schema::HandshakeResponse::Builder out);

}  // namespace lw
