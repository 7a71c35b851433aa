#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.h"
#include "psp_sim/books.h"
#include "psp_sim/config.h"
#include "psp_sim/faults.h"

namespace keel::psp_sim {

// The simulator without sockets: routes of docs/psp_protocol.md, authentication, fault
// decisions, the books of every PSP. The HTTP server (server.h) reads a request, calls admit(),
// waits the latency, calls process(), and delivers what comes back; it owns every timer.
//
// Thread: every method may be called from any thread; each PSP's state (books, faults, retry
// counters) is guarded by its own mutex.

struct SimRequest {
  std::string_view method;         // "POST"
  std::string_view target;         // "/psp/acme/v1/authorizations"
  std::string_view authorization;  // the Authorization header, "" if none
  std::string_view body;
};

struct SimReply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// How the server treats the connection after processing.
enum class Delivery : uint8_t {
  answer,         // write the reply
  black_hole,     // processed; hold the connection open without answering (bounded)
  response_lost,  // processed; close the connection without answering
};

// A webhook to deliver: the fault decisions (loss already applied, duplicate, delay, reorder)
// are taken; the sender signs each try at its own time.
struct OutgoingWebhook {
  size_t psp = 0;  // index into config().psps
  std::string event_id;
  std::string body;
  int64_t delay_ms = 0;
  bool duplicate = false;
  bool reorder = false;
};

// A pending operation to settle (settle()) after delay_ms.
struct AsyncSettle {
  size_t psp = 0;
  std::string reference;
  int64_t delay_ms = 0;
};

struct Effects {
  std::vector<OutgoingWebhook> webhooks;
  std::vector<AsyncSettle> settles;
};

struct Admission {
  enum class Kind : uint8_t {
    answer,   // `reply` now, nothing happened (admin, 400/401/404/503)
    refuse,   // close the connection without answering, nothing happened
    process,  // call process() after latency_ms
  };
  Kind kind = Kind::answer;
  SimReply reply;
  int64_t latency_ms = 0;
  // For process(): what admit() resolved.
  size_t psp = 0;
  uint8_t route = 0;
  std::string subject;   // the reference (or target) the fault decisions are keyed on
  uint64_t attempt = 0;  // how many earlier requests had this subject
  FaultConfig faults;    // the PSP's faults when the request arrived
};

struct Processed {
  SimReply reply;
  Delivery delivery = Delivery::answer;
  Effects effects;
};

class Simulator {
 public:
  Simulator(SimConfig config, uint64_t seed);
  ~Simulator();

  // Routes, authenticates and takes the per-request fault decisions (refuse, 503, latency).
  // Admin routes are answered here.
  [[nodiscard]] Admission admit(const SimRequest& request);
  // Applies an admitted PSP request to the books at wall-clock time `now`, and takes the
  // decisions after processing (black hole, lost response).
  [[nodiscard]] Processed process(const SimRequest& request, const Admission& admission,
                                  Timestamp now);
  // The asynchronous outcome of a pending operation; effects are its webhooks.
  [[nodiscard]] Effects settle(size_t psp, const std::string& reference, Timestamp now);

  [[nodiscard]] const SimConfig& config() const { return config_; }

 private:
  struct PspState;
  [[nodiscard]] SimReply admin(const SimRequest& request);
  [[nodiscard]] Effects effects_of(size_t psp, const FaultConfig& faults,
                                   const std::vector<Event>& events) const;

  SimConfig config_;
  uint64_t seed_;
  std::vector<std::unique_ptr<PspState>> psps_;
};

}  // namespace keel::psp_sim
