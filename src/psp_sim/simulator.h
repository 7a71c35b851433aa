#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.h"
#include "psp_sim/books.h"
#include "psp_sim/config.h"
#include "psp_sim/faults.h"
#include "psp_sim/schedule.h"

namespace keel::psp_sim {

// The simulator without sockets: routes of docs/psp_protocol.md, authentication, fault
// decisions, the books of every PSP. The HTTP server (server.h) reads a request, calls admit(),
// waits the latency, calls process(), and delivers what comes back; it owns every timer.
//
// Admin state per PSP (docs/psp_sim.md): its faults (config, PUT faults), whether its own
// listener should accept (PUT listener, initially true) and an optional fault schedule (config,
// PUT schedule). While a schedule is set, its phase in force decides both, PUT faults and PUT
// listener answer 409 `schedule_in_force`, and DELETE schedule brings back the faults and
// listener state from before it (which the schedule never changed).
//
// Thread: every method may be called from any thread; each PSP's state (books, faults, schedule,
// listener state, retry counters) is guarded by its own mutex.

struct SimRequest {
  std::string_view method;         // "POST"
  std::string_view target;         // "/psp/acme/v1/authorizations"
  std::string_view authorization;  // the Authorization header, "" if none
  std::string_view body;
  // The PSP whose own listener (PspConfig::listen) the request came in on: only that PSP's
  // routes are served there (others answer 404, /admin included). nullopt: the shared port.
  std::optional<size_t> listener_psp;
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
  FaultConfig faults;    // the PSP's faults in force when the request arrived
  // Admin only: the request changed what PSP `psp`'s own listener should do (PUT listener, PUT
  // or DELETE schedule). The server applies listener_plan() before it sends `reply`.
  bool listeners_changed = false;
};

// What a PSP's own listener should do (Simulator::listener_plan()).
struct ListenerPlan {
  bool accepting = true;
  // When the schedule's next phase takes over (the plan may change then); nullopt: no change
  // comes without an admin request.
  std::optional<Timestamp> next_change_at;
};

struct Processed {
  SimReply reply;
  Delivery delivery = Delivery::answer;
  Effects effects;
};

class Simulator {
 public:
  // The schedules of the config (PspConfig::schedule) count from `start` (wall clock).
  Simulator(SimConfig config, uint64_t seed, Timestamp start);
  ~Simulator();

  // Routes, authenticates and takes the per-request fault decisions (refuse, 503, latency) with
  // the faults in force at wall-clock time `now` (the schedule's phase if there is one).
  // Admin routes are answered here.
  [[nodiscard]] Admission admit(const SimRequest& request, Timestamp now);
  // Applies an admitted PSP request to the books at wall-clock time `now`, and takes the
  // decisions after processing (black hole, lost response).
  [[nodiscard]] Processed process(const SimRequest& request, const Admission& admission,
                                  Timestamp now);
  // The asynchronous outcome of a pending operation; effects are its webhooks.
  [[nodiscard]] Effects settle(size_t psp, const std::string& reference, Timestamp now);

  // Whether PSP `psp`'s own listener should accept connections at `now`: the phase of its
  // schedule in force, or else the last PUT /admin/psps/{psp}/listener (initially true).
  // REQUIRES: config().psps[psp].listen is set.
  [[nodiscard]] ListenerPlan listener_plan(size_t psp, Timestamp now);
  // The server reports the port of PSP `psp`'s own listener and whether it is open, for
  // GET /admin/psps/{psp}/listener. REQUIRES: config().psps[psp].listen is set.
  void note_listener(size_t psp, uint16_t port, bool listening);

  [[nodiscard]] const SimConfig& config() const { return config_; }

 private:
  struct PspState;
  void admin(const SimRequest& request, Timestamp now, Admission* a);
  [[nodiscard]] SimReply admin_list(Timestamp now);
  [[nodiscard]] SimReply put_faults(size_t psp, std::string_view body);
  // PUT /admin/psps/{psp}/api_keys {"keys": [...]}: the API keys the PSP accepts from now on.
  [[nodiscard]] SimReply put_api_keys(size_t psp, std::string_view body);
  // Whether `authorization` is "Bearer KEY" with a key PSP `psp` accepts.
  [[nodiscard]] bool authorized(size_t psp, std::string_view authorization);
  [[nodiscard]] SimReply operations(size_t psp);
  [[nodiscard]] SimReply listener(size_t psp, const SimRequest& request, Timestamp now,
                                  bool* changed);
  [[nodiscard]] SimReply schedule(size_t psp, const SimRequest& request, Timestamp now,
                                  bool* changed);
  [[nodiscard]] size_t psp_index(std::string_view name) const;  // psps_.size() if none
  [[nodiscard]] Effects effects_of(size_t psp, const FaultConfig& faults,
                                   const std::vector<Event>& events) const;

  SimConfig config_;
  uint64_t seed_;
  std::vector<std::unique_ptr<PspState>> psps_;
};

}  // namespace keel::psp_sim
