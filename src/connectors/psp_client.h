#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/operation.h"
#include "connectors/outcome.h"
#include "net/tls_config.h"

namespace keel::connectors {

struct PspClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string psp;      // the {psp} of the path prefix /psp/{psp}/v1
  std::string api_key;  // sent as Authorization: Bearer {api_key}
  // Also accepted, during a credential rotation's overlap: tried in order after a 401 (the
  // PSP did not authenticate the request, so it did not act on it). set_api_keys() replaces
  // both at run time.
  std::vector<std::string> fallback_api_keys;
  size_t connections_max = 8;       // open connections, busy or idle (>= 1)
  size_t queued_calls_max = 1'024;  // calls waiting for a connection; more are not_sent
  int64_t connect_timeout_ms = 1'000;
  // Bound on the whole call: waiting for a connection, connecting, writing, reading.
  int64_t total_timeout_ms = 10'000;
  // An idle keep-alive connection older than this is closed instead of reused (keep it below
  // the PSP's own idle timeout).
  int64_t idle_timeout_ms = 30'000;
  uint64_t response_body_bytes_max = uint64_t{1} << 20;
  // https: TLS (net/tls.h), the PSP's certificate verified against these CAs for `host`, with a
  // client certificate when given. nullopt: plain http. A TLS problem (the context, the
  // handshake: an expired or foreign certificate) fails the call as connect_failed before
  // anything is sent, and is logged with OpenSSL's reason.
  std::optional<net::TlsClientConfig> tls;
};

// How one call ended. `outcome` and `error_code` follow normalize_answer() (outcome.h); `op`
// is the operation whenever a 2xx carried one; `latency_ms` is the whole call as the caller saw
// it, queueing included.
struct PspResult {
  AttemptOutcome outcome = AttemptOutcome::unknown;
  std::string error_code;
  std::optional<Operation> op;
  int64_t latency_ms = 0;
};
using PspCallback = std::function<void(PspResult)>;

// A card in clear, from the vault, for one request: sent as the "card" object instead of a
// card_token (docs/psp_protocol.md). Never logged.
struct CardData {
  std::string number;
  int exp_month = 0;
  int exp_year = 0;
  std::string cvc;  // empty: none (the vault holds a CVC only until the first authorization)
};

struct AuthorizeRequest {
  std::string reference;  // the attempt id; [A-Za-z0-9_-]{1,128} (protocol)
  int64_t amount_minor = 0;
  std::string currency;
  std::string card_token;        // a PSP's token; empty when `card` is set
  bool capture = false;          // capture at once
  std::optional<CardData> card;  // a vault card (sent instead of card_token)
};

struct CaptureRequest {
  std::string reference;                // the authorization's reference
  std::optional<int64_t> amount_minor;  // nullopt: all that was authorized
};

struct RefundRequest {
  std::string reference;          // the refund attempt's own reference
  std::string payment_reference;  // the captured authorization's reference
  int64_t amount_minor = 0;
};

enum class PayoutDestinationKind : uint8_t { iban, account };
struct PayoutRequest {
  std::string reference;
  int64_t amount_minor = 0;
  std::string currency;
  PayoutDestinationKind destination_kind = PayoutDestinationKind::iban;
  std::string destination;  // the IBAN or the account id
};

enum class TopupSourceKind : uint8_t { card_token, bank_account };
struct TopupRequest {
  std::string reference;
  int64_t amount_minor = 0;
  std::string currency;
  TopupSourceKind source_kind = TopupSourceKind::card_token;
  std::string source;
};

// An asynchronous HTTP/1.1 client for one PSP endpoint speaking docs/psp_protocol.md, with a
// bounded pool of keep-alive connections (Boost.Beast).
//
// Thread: every method may be called from any thread; work runs on a strand of the executor
// given to the constructor (an io_context the caller owns and runs), and every callback runs on
// that strand, never inline from the method that started the call. Each call's callback runs
// exactly once, as long as the io_context runs.
//
// Never throws and never retries on its own (retry policy belongs to routing). Two exceptions,
// both for requests the PSP cannot have acted on: a request whose write failed before any byte
// of it went out on a reused keep-alive connection is resent once on a new connection; and a
// request answered 401 is sent again with the next API key (a rotation's overlap), each key at
// most once. The key that last got an answer other than 401 is sent first from then on, so
// whichever side of a rotation moves first, calls keep working with one extra round trip at
// most per switch. Any other failure is reported as it happened, normalized by
// normalize_answer().
//
// `traceparent` (W3C) is passed to the PSP as is when it is well formed (only [0-9a-f-],
// at most 128 characters) and dropped otherwise; empty: no header.
//
// Destruction closes every connection; calls in flight then complete (on the strand, after the
// destructor returned) as their phase allows: queued or connecting -> retryable, writing ->
// retryable, reading -> unknown. REQUIRES: the io_context outlives those callbacks' state.
class PspClient {
 public:
  PspClient(boost::asio::any_io_executor executor, PspClientOptions options);
  ~PspClient();
  PspClient(const PspClient&) = delete;
  PspClient& operator=(const PspClient&) = delete;

  // POST /authorizations.
  void authorize(const AuthorizeRequest& request, std::string_view traceparent, PspCallback done);
  // POST /authorizations/{reference}/capture.
  void capture(const CaptureRequest& request, std::string_view traceparent, PspCallback done);
  // POST /authorizations/{reference}/void.
  void void_authorization(std::string_view reference, std::string_view traceparent,
                          PspCallback done);
  // POST /refunds.
  void refund(const RefundRequest& request, std::string_view traceparent, PspCallback done);
  // POST /payouts.
  void payout(const PayoutRequest& request, std::string_view traceparent, PspCallback done);
  // POST /topups.
  void topup(const TopupRequest& request, std::string_view traceparent, PspCallback done);
  // GET /operations/{reference}: the status query (outcome not_found: never received).
  void get_operation(std::string_view reference, std::string_view traceparent, PspCallback done);

  // Counters since construction; readable from any thread.
  // Replaces the API keys (the first is sent first; the others after a 401). Any thread; takes
  // effect for requests not yet written. REQUIRES: at least one key.
  void set_api_keys(std::vector<std::string> keys);

  struct Stats {
    uint64_t connections_opened = 0;    // TCP connections established
    uint64_t resent = 0;                // requests resent once after a dead keep-alive connection
    uint64_t credential_fallbacks = 0;  // requests sent again with another key after a 401
  };
  [[nodiscard]] Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace keel::connectors
