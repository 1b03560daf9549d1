// The catalogue of every error code layerwire can raise: one X-macro row per code with
// its stable id, its kind (how it maps to an RPC exception type) and a one-line cause.
// docs/TROUBLESHOOTING.md documents each row (symptom, cause, fix); a test fails when the
// two disagree. Codes are never renumbered or reused; add new rows at the end of a section.
#pragma once

// X(enum_name, "LW-AREA-NNN", kind, "short cause")
// kind: BadInput (remote/file/config input was wrong -> RPC "failed"),
//       Corrupt (stored bytes do not match their checksum or layout),
//       NotFound, Io (the OS refused), Unsupported (valid but not handled),
//       Overloaded (budget / busy -> RPC "overloaded"), Internal.
#define LW_ERROR_CODES(X)                                                                     \
  /* ---- common ---- */                                                                      \
  X(kIoOpen, "LW-IO-001", Io, "a file or folder could not be opened")                        \
  X(kIoRead, "LW-IO-002", Io, "reading a file failed")                                        \
  X(kIoWrite, "LW-IO-003", Io, "writing a file failed (disk full, permissions)")             \
  X(kIoRename, "LW-IO-004", Io, "renaming or removing a file or folder failed")              \
  X(kIoMap, "LW-IO-005", Io, "memory-mapping a file failed")                                 \
  X(kJsonParse, "LW-JSON-001", BadInput, "a JSON file is not valid JSON")                    \
  X(kJsonField, "LW-JSON-002", BadInput, "a JSON field is missing or has the wrong type")    \
  X(kCliArgument, "LW-CLI-001", BadInput, "a command-line argument is invalid")              \
  /* ---- gguf (fragments/gguf.*) ---- */                                                     \
  X(kGgufMagic, "LW-GGUF-001", BadInput, "the file does not start with the GGUF magic")      \
  X(kGgufVersion, "LW-GGUF-002", Unsupported, "GGUF version other than 2 or 3")              \
  X(kGgufTruncated, "LW-GGUF-003", Corrupt, "the file ends inside a header field")           \
  X(kGgufCount, "LW-GGUF-004", Corrupt, "a count or length is larger than the file allows")  \
  X(kGgufValueType, "LW-GGUF-005", Corrupt, "unknown metadata value type")                   \
  X(kGgufTensorType, "LW-GGUF-006", Unsupported, "tensor of an unknown or unsupported type") \
  X(kGgufTensorShape, "LW-GGUF-007", Corrupt, "tensor dims invalid (zero, too many, overflow, not a multiple of the block)") \
  X(kGgufTensorOffset, "LW-GGUF-008", Corrupt, "tensor data lies outside the file or is misaligned") \
  X(kGgufTensorOverlap, "LW-GGUF-009", Corrupt, "two tensors' data overlap")                 \
  X(kGgufDuplicate, "LW-GGUF-010", Corrupt, "duplicate metadata key or tensor name")         \
  X(kGgufAlignment, "LW-GGUF-011", Corrupt, "general.alignment is not a power of two")       \
  X(kGgufMissingKey, "LW-GGUF-012", BadInput, "a required metadata key is missing or has the wrong type") \
  X(kGgufMissingTensor, "LW-GGUF-013", BadInput, "a required tensor is missing")            \
  /* ---- architecture detection (fragments/arch.*) ---- */                                  \
  X(kArchUnsupported, "LW-ARCH-001", Unsupported, "general.architecture is not llama")       \
  X(kArchShape, "LW-ARCH-002", BadInput, "hyper-parameters or tensor shapes are inconsistent") \
  X(kArchTensor, "LW-ARCH-003", Unsupported, "unknown, MoE or bias tensor in a llama model") \
  /* ---- fragment store (fragments/store.*, manifest.*) ---- */                             \
  X(kFragMissing, "LW-FRAG-001", Corrupt, "a fragment file named in the manifest is missing") \
  X(kFragExtra, "LW-FRAG-002", Corrupt, "a file in the store is not in the manifest")        \
  X(kFragSize, "LW-FRAG-003", Corrupt, "a fragment file has the wrong size (truncated or grown)") \
  X(kFragChecksum, "LW-FRAG-004", Corrupt, "a fragment file or tensor fails its xxh3-128 check") \
  X(kFragHeader, "LW-FRAG-005", Corrupt, "a fragment file header is invalid")                \
  X(kManifestParse, "LW-FRAG-006", Corrupt, "manifest.json is missing, unreadable or malformed") \
  X(kManifestDigest, "LW-FRAG-007", Corrupt, "manifest.json was edited: its digest does not match") \
  X(kFragDirNotEmpty, "LW-FRAG-008", BadInput, "the output folder exists and is not empty")  \
  X(kFragIncomplete, "LW-FRAG-009", Corrupt, "an interrupted split left a temporary folder") \
  X(kFragLayerRange, "LW-FRAG-010", BadInput, "a layer range is empty or outside the model") \
  X(kFragTensorLookup, "LW-FRAG-011", NotFound, "a tensor is not in the store")              \
  X(kFragGgufGaps, "LW-FRAG-012", Unsupported, "the GGUF holds too many non-zero bytes outside its tensors") \
  /* ---- quant formats (fragments/quant.*) ---- */                                          \
  X(kQuantSize, "LW-QUANT-001", BadInput, "element count not a multiple of the block size")  \
  /* ---- synth (fragments/synth.*) ---- */                                                  \
  X(kSynthOption, "LW-SYNTH-001", BadInput, "unknown preset or quant mix, or bad layer count") \
  /* ---- engine / kernels ---- */                                                           \
  X(kEngineShape, "LW-ENG-001", BadInput, "a forward input has the wrong shape")             \
  X(kEngineSession, "LW-ENG-002", BadInput, "unknown or closed session")                     \
  X(kEnginePosition, "LW-ENG-003", BadInput, "start position is not contiguous with the session") \
  X(kKvExhausted, "LW-KV-001", Overloaded, "the KV cache budget is exhausted")               \
  X(kBackendUnavailable, "LW-BACKEND-001", Unsupported, "the requested backend is not built or no device") \
  X(kBackendDevice, "LW-BACKEND-002", Internal, "a device call failed")                       \
  /* ---- wire codec (common/wire_codec.*) ---- */                                           \
  X(kWireDtype, "LW-WIRE-001", BadInput, "unknown or mismatched tensor dtype")               \
  X(kWireShape, "LW-WIRE-002", BadInput, "tensor shape does not match its byte size")        \
  X(kWireChecksum, "LW-WIRE-003", BadInput, "tensor xxh3-64 does not match its bytes")       \
  X(kWireDecode, "LW-WIRE-004", BadInput, "corrupt zstd frame or wrong decoded size")        \
  X(kWireEncoding, "LW-WIRE-005", BadInput, "unknown tensor encoding")                       \
  X(kWireTooLarge, "LW-WIRE-006", BadInput, "tensor larger than the configured limit")       \
  X(kWireProtocolVersion, "LW-WIRE-007", Unsupported, "client and server speak different protocol versions") \
  /* ---- server (server/, common/config) ---- */                                            \
  X(kSrvSessionLimit, "LW-SRV-001", Overloaded, "max_sessions sessions are already open")    \
  X(kSrvBusy, "LW-SRV-002", Overloaded, "the compute queue is full or the server is not serving") \
  X(kSrvSessionTokens, "LW-SRV-003", BadInput, "positions past the session's maxTokens or the server's KV budget") \
  X(kSrvDigest, "LW-SRV-004", BadInput, "client and server hold different manifests (digest mismatch)") \
  X(kSrvArchitecture, "LW-SRV-005", BadInput, "client expects another model architecture")  \
  X(kSrvMessageSize, "LW-SRV-006", BadInput, "an RPC message is larger than max_message_bytes") \
  X(kSrvListen, "LW-SRV-007", Io, "the server cannot listen on the configured address")     \
  X(kSrvVerify, "LW-SRV-008", Corrupt, "the server's fragments failed verification at startup") \
  X(kAuthMissing, "LW-AUTH-001", BadInput, "the server requires a token and none was sent") \
  X(kAuthWrong, "LW-AUTH-002", BadInput, "the auth token does not match the server's")      \
  X(kAuthFile, "LW-AUTH-003", BadInput, "the auth token file is unreadable, empty or readable by others") \
  X(kCfgValue, "LW-CFG-001", BadInput, "a config value is out of range or invalid")         \
  X(kSrvMalformed, "LW-SRV-009", BadInput, "bytes on the RPC port are not a Cap'n Proto RPC message") \
  /* ---- client (client/: RemoteLayerExecutor, routing, failover) ---- */                   \
  X(kClientConnect, "LW-CLIENT-001", Io, "a layer server could not be reached, or a call to it failed or timed out") \
  X(kClientCoverage, "LW-CLIENT-002", BadInput, "the servers' layer ranges leave some layers of the model uncovered") \
  X(kClientRange, "LW-CLIENT-003", BadInput, "a server's layer range overlaps another's or differs from the config") \
  X(kClientFailover, "LW-CLIENT-004", Io, "a server failed and no replica could take over its layers") \
  X(kClientModel, "LW-CLIENT-005", BadInput, "a server's model does not match the client's (hidden size or answer)") \
  X(kClientSessionFull, "LW-CLIENT-006", BadInput, "a request would exceed the session's token capacity") \
  /* ---- tokenizer and sampler (client/tokenizer*, sampler*, chat_format*) ---- */         \
  X(kTokMetadata, "LW-TOK-001", BadInput, "the tokenizer metadata (tokenizer.ggml.*) is missing, malformed or inconsistent") \
  X(kTokUnsupported, "LW-TOK-002", Unsupported, "tokenizer model or pre-tokenizer type not supported") \
  X(kTokUnknownId, "LW-TOK-003", BadInput, "a token id is outside the vocabulary") \
  X(kTokUnencodable, "LW-TOK-004", BadInput, "the text holds a byte the vocabulary cannot represent") \
  X(kTokSamplerParam, "LW-TOK-005", BadInput, "a sampling parameter is out of range") \
  X(kTokChat, "LW-TOK-006", BadInput, "a chat conversation is malformed (roles out of order, empty)") \
  /* ---- internal ---- */                                                                   \
  X(kInternal, "LW-INT-001", Internal, "an internal invariant failed (a bug; please report)")
