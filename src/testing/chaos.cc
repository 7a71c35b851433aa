#include "testing/chaos.h"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/time.h"
#include "net/http_client.h"
#include "testing/payments_stack.h"

namespace keel::testing::chaos {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// A healthy PSP answers in 2..20 ms and approves everything. Every schedule phase starts from
// it (a phase replaces the faults, it does not add to them).
constexpr int64_t kHealthyLatencyMinMs = 2, kHealthyLatencyMaxMs = 20;
constexpr int64_t kSlowLatencyMs = 5'000;
constexpr int64_t kNoChannelRetryMs = 10'000;  // how long a 503 no_channel_available is retried
constexpr int kTransportTriesMax = 20;         // per request: transport errors and other 5xx
constexpr int64_t kDelayedStartMs = 10;
constexpr size_t kErrorSamplesMax = 5;
constexpr int64_t kChannelPollMs = 100;

// What the simulated PSPs charge (fixed + bps), and what keel's channels say they cost: the
// same fixed parts, but p2 and p3 at 70 % and 75 % of the amount, so that p1 stays the best
// score until its breaker opens (chaos.h says why). The canary p1c is p1 in both.
constexpr SimPspFees kFees[] = {{10, 100}, {20, 200}, {30, 290}, {10, 100}};
constexpr int64_t kCostBps[] = {100, 7'000, 7'500, 100};
static_assert(std::size(kFees) == kPsps.size() && std::size(kCostBps) == kPsps.size());
static_assert(kPsps.back() == kCanary);
constexpr std::string_view kCanaryErrorRate = "0.3";  // of the canary's requests, answered 503
constexpr int64_t kRecoveryBucketMs = 1'000;

const std::vector<Scenario> kScenarios = {
    {"baseline", "no fault: the reference for the success rate", FaultKind::none, 0, false},
    {"primary_refuses", "p1's own listener refuses connections", FaultKind::refuse, 1, true},
    {"primary_black_hole", "p1 processes every request and never answers", FaultKind::black_hole, 1,
     true},
    {"primary_slow", "p1 answers every request after 5 s", FaultKind::slow, 1, true},
    {"primary_flaps", "p1's listener down and up again, flap_ms each", FaultKind::flap, 1, true},
    {"two_down", "p1's and p2's listeners refuse connections", FaultKind::refuse, 2, true},
    {"canary_errors", "p1's canary p1c takes 40 % of p1's traffic and answers 503 to 30 %",
     FaultKind::canary_errors, 1, false},
    {"soft_declines", "p1 soft-declines half of the authorizations", FaultKind::soft_decline, 1,
     false},
};

// --- Scenario set-up --------------------------------------------------------------------------

// "latency_ms": {...} of a faults object.
std::string latency_json(int64_t min_ms, int64_t max_ms) {
  return R"("latency_ms": {"min": )" + std::to_string(min_ms) + R"(, "max": )" +
         std::to_string(max_ms) + "}";
}

// A phase at `at_ms`: `faults` (a healthy PSP's latency unless it sets its own), accepting or
// not.
std::string phase(int64_t at_ms, std::string_view extra_faults, bool accepting) {
  std::string faults = "{";
  if (extra_faults.find("latency_ms") == std::string_view::npos) {
    faults += latency_json(kHealthyLatencyMinMs, kHealthyLatencyMaxMs);
    if (!extra_faults.empty()) faults += ", ";
  }
  faults += extra_faults;
  faults += "}";
  return R"({"at_ms": )" + std::to_string(at_ms) + R"(, "faults": )" + faults +
         R"(, "accepting": )" + (accepting ? "true" : "false") + "}";
}

// The schedule of a failing PSP: healthy, the fault from lead_ms for fault_ms, healthy again.
std::string schedule_json(const Scenario& s, const ChaosOptions& o) {
  std::vector<std::string> phases;
  if (o.lead_ms > 0) phases.push_back(phase(0, {}, true));
  const int64_t end_ms = o.lead_ms + fault_ms_of(s, o);
  switch (s.fault) {
    case FaultKind::refuse:
      phases.push_back(phase(o.lead_ms, {}, false));
      break;
    case FaultKind::black_hole:
      phases.push_back(phase(o.lead_ms, R"("black_hole_rate": 1.0)", true));
      break;
    case FaultKind::slow:
      phases.push_back(phase(o.lead_ms, latency_json(kSlowLatencyMs, kSlowLatencyMs), true));
      break;
    case FaultKind::flap: {
      bool down = true;
      for (int64_t at = o.lead_ms; at < end_ms; at += o.flap_ms, down = !down) {
        phases.push_back(phase(at, {}, !down));
      }
      break;
    }
    case FaultKind::soft_decline:
      phases.push_back(phase(o.lead_ms,
                             R"("decline_rate": 0.5, "decline_codes": [)"
                             R"({"code": "issuer_unavailable", "type": "soft"}, )"
                             R"({"code": "try_again_later", "type": "soft"}])",
                             true));
      break;
    case FaultKind::canary_errors:
      phases.push_back(
          phase(o.lead_ms, R"("error_5xx_rate": )" + std::string(kCanaryErrorRate), true));
      break;
    case FaultKind::none:
      return {};
  }
  phases.push_back(phase(end_ms, {}, true));
  if (phases.size() > 64) throw std::runtime_error("more than 64 schedule phases");
  std::string out = R"({"phases": [)";
  for (size_t i = 0; i < phases.size(); ++i) out += (i ? ", " : "") + phases[i];
  return out + R"(], "repeat_ms": 0})";
}

PaymentsStackOptions stack_options(const ChaosOptions& o, const std::string& run) {
  PaymentsStackOptions so;
  so.seed = o.seed;
  so.keeld_binary = o.keeld_binary;
  so.sim_binary = o.sim_binary;
  if (!o.data_parent.empty()) so.data_dir = o.data_parent / ("chaos-" + run);
  so.currencies = {"USD"};
  so.own_listeners = true;
  so.psps.clear();
  for (size_t i = 0; i < kPsps.size(); ++i) {
    const std::string psp(kPsps[i]);
    so.psps.push_back(psp);
    so.psp_fees[psp] = kFees[i];
    so.channel_toml[psp] = "cost_bps = " + std::to_string(kCostBps[i]) +
                           "\ncost_fixed = " + std::to_string(kFees[i].fixed) + "\n";
    if (psp == kCanary) so.channel_toml[psp] += "canary_of = \"" + std::string(kPrimary) + "\"\n";
    so.sim_toml_extra += "[psps." + psp +
                         ".faults]\nlatency_ms = { min = " + std::to_string(kHealthyLatencyMinMs) +
                         ", max = " + std::to_string(kHealthyLatencyMaxMs) + " }\n";
  }
  so.total_timeout_ms = 2'000;
  so.resolve_initial_ms = 200;
  so.resolve_max_ms = 2'000;
  so.not_found_grace_ms = 10'000;  // above the slow scenario's 5 s latency plus the timeout
  so.channel_toml_extra =
      "currencies = [\"USD\"]\nconnections_max = 64\nconnect_timeout_ms = 500\n";
  so.routing_toml = "max_tries = 3\nseed = " + std::to_string(o.seed) +
                    "\nbreaker_slow_call_ms = 1000\nbreaker_open_ms = 5000\n" +
                    "canary_min_samples = " + std::to_string(kCanaryMinSamples) + "\n";
  so.keeld_toml_extra = "[admin]\ncontrols = true\n";
  so.payments_toml_extra = "processing_deadline_s = " + std::to_string(o.processing_deadline_s) +
                           "\nsettle_wait_ms = " + std::to_string(o.settle_wait_ms) + "\n";
  so.keeld_args = {"--log-level", "warn"};
  so.sim_args = {"--log-level", "warn"};
  return so;
}

std::unique_ptr<PaymentsStack> start_stack(const ChaosOptions& o, const std::string& run) {
  std::unique_ptr<PaymentsStack> stack;
  if (Status s = PaymentsStack::start(stack_options(o, run), &stack); !s.is_ok()) {
    throw std::runtime_error("starting keeld and keel-psp-sim: " + s.message());
  }
  return stack;
}

// Payment i's amount: an edge of the range one time in six (1, below each PSP's fixed fee,
// at it, the largest), else log-uniform over 1.00 .. 100,000.00.
int64_t amount_of(uint64_t seed, uint64_t i) {
  static constexpr int64_t kEdges[] = {
      1, 2, 5, 9, 10, 11, 19, 20, 21, 29, 30, 31, 99'999'999, 10'000'000'000, 1'000'000'000'000};
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + i + 1;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  if (z % 6 == 0) return kEdges[(z >> 8) % std::size(kEdges)];
  const double u = static_cast<double>(z >> 11) / static_cast<double>(uint64_t{1} << 53);
  return static_cast<int64_t>(std::pow(10.0, 2.0 + 5.0 * u));
}

// --- HTTP -------------------------------------------------------------------------------------

std::unique_ptr<net::HttpClient> keeld_client(uint16_t port, int64_t io_timeout_ms) {
  net::HttpClientOptions o;
  o.endpoint = {"127.0.0.1", port};
  o.io_timeout_ms = io_timeout_ms;
  o.response_body_bytes_max = uint64_t{1} << 30;
  testing::use_admin_key(&o);
  return std::make_unique<net::HttpClient>(o);
}

std::string str(const json::value& v, std::string_view key) {
  const json::value* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  return f != nullptr && f->is_string() ? std::string(f->get_string()) : std::string();
}

int64_t num(const json::value& v, std::string_view key) {
  const json::value* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  return f != nullptr && f->is_int64() ? f->get_int64() : 0;
}

bool flag(const json::value& v, std::string_view key) {
  const json::value* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  return f != nullptr && f->is_bool() && f->get_bool();
}

json::value parse_or_null(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  return ec ? json::value(nullptr) : v;
}

bool is_final(std::string_view status) {
  return status == "succeeded" || status == "failed" || status == "canceled";
}

// --- One payment ------------------------------------------------------------------------------

struct PaymentRecord {
  Clock::time_point scheduled{};
  std::string id;
  bool confirmed = false;
  std::optional<Clock::time_point> final_answer;  // the confirm answered a final status
  bool no_channel = false;                        // a confirm answered 503 no_channel_available
  double start_delay_ms = 0;
  std::string error;  // an answer the harness did not expect
};

// POSTs with `key`, again with the same key after a transport error or a 5xx (but a 503
// no_channel_available, which the caller handles). False with `error` after too many tries.
bool post_with_retries(net::HttpClient& client, const std::string& target, const std::string& body,
                       const std::string& key, net::HttpResponse* r, std::string* error) {
  const net::HttpHeaders headers = {{"Idempotency-Key", key}};
  for (int attempt = 0; attempt < kTransportTriesMax; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10 * attempt));
    const Status s = client.request("POST", target, body, headers, r);
    if (!s.is_ok()) {
      *error = "POST " + target + ": " + s.message();
      continue;
    }
    if (r->status < 500 || r->body.find("no_channel_available") != std::string::npos) {
      return true;
    }
    *error =
        "POST " + target + ": HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 200);
  }
  return false;
}

// Creates and confirms one payment. Fills everything of `out` but `scheduled`.
void pay(net::HttpClient& client, const std::string& merchant, int64_t amount,
         const std::string& key_prefix, PaymentRecord* out) {
  net::HttpResponse r;
  const std::string create = R"({"amount": )" + std::to_string(amount) +
                             R"(, "currency": "USD", "merchant": ")" + merchant +
                             R"(", "payment_method": "tok_visa"})";
  if (!post_with_retries(client, "/v1/payments", create, key_prefix + "c", &r, &out->error)) {
    return;
  }
  out->id = str(parse_or_null(r.body), "id");
  if (r.status != 200 || out->id.empty()) {
    out->error = "create: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200);
    return;
  }
  const std::string target = "/v1/payments/" + out->id + "/confirm";
  const auto began = Clock::now();
  while (true) {
    out->error.clear();
    if (!post_with_retries(client, target, "{}", key_prefix + "f", &r, &out->error)) return;
    if (r.status != 503) break;
    out->no_channel = true;
    if (Clock::now() - began > std::chrono::milliseconds(kNoChannelRetryMs)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const json::value body = parse_or_null(r.body);
  if (r.status == 409 && r.body.find("idempotency_key_in_use") != std::string::npos) {
    out->confirmed = true;  // an earlier try reached keeld, which has the confirm
  } else if (r.status == 200 && !str(body, "status").empty()) {
    out->confirmed = true;
    if (is_final(str(body, "status"))) out->final_answer = Clock::now();
  } else {
    out->error = "confirm: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200);
  }
}

// --- The load ---------------------------------------------------------------------------------

struct Load {
  std::string merchant;
  std::string run;  // prefix of the Idempotency-Keys
  uint64_t seed = 1;
  uint16_t port = 0;
  int64_t io_timeout_ms = 0;
};

// Open loop: payment i at start + i / rate, taken by the next free worker.
std::vector<PaymentRecord> run_open_loop(const Load& load, double rate_per_s, size_t count,
                                         size_t workers, Clock::time_point start) {
  std::vector<PaymentRecord> records(count);
  std::atomic<size_t> next{0};
  const auto period = std::chrono::duration<double>(1.0 / rate_per_s);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      const auto client = keeld_client(load.port, load.io_timeout_ms);
      for (size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
        PaymentRecord& rec = records[i];
        rec.scheduled = start + std::chrono::duration_cast<Clock::duration>(period * i);
        std::this_thread::sleep_until(rec.scheduled);
        rec.start_delay_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - rec.scheduled).count();
        pay(*client, load.merchant, amount_of(load.seed, i),
            load.run + "-" + std::to_string(i) + "-", &rec);
      }
    });
  }
  for (auto& t : threads) t.join();
  return records;
}

// Polls GET /v1/channels every kChannelPollMs on a thread of its own; notes when each
// channel's breaker state changes.
class ChannelWatch {
 public:
  struct Change {
    std::string channel;
    std::string state;
    Clock::time_point at;
  };

  explicit ChannelWatch(uint16_t port) : port_(port), thread_([this] { loop(); }) {}
  ~ChannelWatch() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // REQUIRES: stop() was called.
  [[nodiscard]] const std::vector<Change>& changes() const { return changes_; }

 private:
  void loop() {
    const auto client = keeld_client(port_, 5'000);
    std::map<std::string, std::string> last;
    while (!stop_) {
      net::HttpResponse r;
      const auto at = Clock::now();
      if (client->get("/v1/channels", &r).is_ok() && r.status == 200) {
        const json::value v = parse_or_null(r.body);
        const json::value* data = v.is_object() ? v.as_object().if_contains("data") : nullptr;
        for (const json::value& c :
             data != nullptr && data->is_array() ? data->get_array() : json::array()) {
          const std::string id = str(c, "id");
          const json::value* breaker = c.as_object().if_contains("breaker");
          const std::string state = breaker != nullptr ? str(*breaker, "state") : "";
          if (last[id] != state) changes_.push_back({id, state, at});
          last[id] = state;
        }
      }
      std::this_thread::sleep_until(at + std::chrono::milliseconds(kChannelPollMs));
    }
  }

  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::vector<Change> changes_;
  std::thread thread_;
};

// --- After the load ---------------------------------------------------------------------------

// Every payment of `merchant`, through the list (100 a page).
std::vector<json::value> list_payments(PaymentsStack& stack, const std::string& merchant,
                                       std::string_view status = {}) {
  std::vector<json::value> out;
  std::string after;
  while (true) {
    std::string target = "/v1/payments?limit=100&merchant=" + merchant;
    if (!status.empty()) target += "&status=" + std::string(status);
    if (!after.empty()) target += "&starting_after=" + after;
    const JsonResponse r = stack.get(target);
    if (r.status != 200 || !r.body.is_object()) {
      throw std::runtime_error("GET " + target + ": " + std::to_string(r.status) + " " +
                               r.text.substr(0, 300));
    }
    const json::array& data = r.body.at("data").as_array();
    for (const json::value& p : data) out.push_back(p);
    if (!flag(r.body, "has_more") || data.empty()) return out;
    after = str(data.back(), "id");
  }
}

// Waits until no payment is processing outside review, or until every processing payment's
// deadline has passed by a few seconds (then those are what the check counts).
void wait_settled(PaymentsStack& stack, const std::string& merchant, const ChaosOptions& o) {
  const auto give_up =
      Clock::now() + std::chrono::seconds(o.processing_deadline_s) + std::chrono::seconds(10);
  while (Clock::now() < give_up) {
    bool open = false;
    for (const json::value& p : list_payments(stack, merchant, "processing")) {
      open = open || !flag(p, "requires_review");
    }
    if (!open) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

// What the analysis needs about time: the run's clocks and the fault's window.
struct Window {
  Clock::time_point fault_start, fault_end;
  Clock::time_point steady_zero;
  Timestamp wall_zero = 0;  // wall_clock_now() at steady_zero
  [[nodiscard]] Clock::time_point steady_of(Timestamp wall) const {
    return steady_zero + std::chrono::nanoseconds(wall - wall_zero);
  }
};

std::optional<Clock::time_point> final_time(const json::value& p, const PaymentRecord& rec,
                                            const Window& w) {
  if (rec.final_answer) return rec.final_answer;
  std::optional<Clock::time_point> at;
  for (const json::value& t : p.at("timeline").as_array()) {
    if (!is_final(str(t, "to"))) continue;
    if (const auto wall = parse_rfc3339(str(t, "at"))) at = w.steady_of(*wall);
  }
  return at;
}

// Percentile (0..100) of `samples`, which it sorts; 0 if there are none.
double percentile(std::vector<double>& samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t i = std::min(samples.size() - 1, static_cast<size_t>(p / 100.0 * samples.size()));
  return samples[i];
}

bool holds_money(const json::object& op) {
  const json::value* st = op.if_contains("status");
  return st != nullptr && st->is_string() &&
         (st->get_string() == "captured" || st->get_string() == "authorized");
}

// Counts the payment's outcome (as GET shows it after settling) into `r`.
void count_outcome(const json::value& p, Timestamp now, ChaosResult* r) {
  const std::string status = str(p, "status");
  if (flag(p, "requires_review")) {
    ++r->in_review;
  } else if (status == "succeeded") {
    ++r->succeeded;
    ++r->books[str(p, "channel")].succeeded;
  } else if (status == "failed") {
    ++r->failed;
  } else if (status == "processing") {
    ++r->processing;
    const auto deadline = parse_rfc3339(str(p, "deadline"));
    if (deadline && *deadline < now) ++r->processing_past_deadline;
  } else if (status == "requires_confirmation") {
    ++r->not_confirmed;
  } else {
    ++r->other;
  }
}

// Attempts, outcomes, latency and the fault figures of each payment.
void tally_payments(const std::vector<json::value>& payments,
                    const std::map<std::string, const PaymentRecord*>& records, const Scenario& s,
                    const Window& w, ChaosResult* r) {
  std::vector<double> latency_ms;
  std::set<std::string> failing;
  for (const std::string_view psp : failing_psps_of(s)) failing.emplace(psp);
  std::optional<Clock::time_point> recovered;
  // After the fault, by kRecoveryBucketMs of scheduled time: successes, and those on p1.
  std::map<int64_t, std::pair<int64_t, int64_t>> after_fault;
  const Timestamp now = wall_clock_now();
  for (const json::value& p : payments) {
    const auto rec = records.find(str(p, "id"));
    if (rec == records.end()) continue;  // not one of the load's (none are)
    const std::string status = str(p, "status");
    const std::string channel = str(p, "channel");
    const bool review = flag(p, "requires_review");
    const bool succeeded = status == "succeeded" && !review;
    count_outcome(p, now, r);
    if (is_final(status) && !review) {
      if (const auto at = final_time(p, *rec->second, w)) {
        latency_ms.push_back(std::max(
            0.0, std::chrono::duration<double, std::milli>(*at - rec->second->scheduled).count()));
      }
    }
    std::vector<std::string> tried;
    bool soft_on_primary = false;
    for (const json::value& a : p.at("attempts").as_array()) {
      if (str(a, "kind") != "authorization") continue;
      const std::string ch = str(a, "channel");
      ++r->books[ch].authorization_attempts;
      if (std::find(tried.begin(), tried.end(), ch) != tried.end()) ++r->same_channel_retries;
      tried.push_back(ch);
      soft_on_primary = soft_on_primary || (ch == kPrimary && str(a, "status") == "declined_soft");
    }
    r->authorization_attempts += static_cast<int64_t>(tried.size());
    r->attempts_max = std::max(r->attempts_max, static_cast<int64_t>(tried.size()));
    if (std::set<std::string>(tried.begin(), tried.end()).size() > 1) ++r->failed_over;
    if (soft_on_primary) {
      ++r->soft_declined_on_primary;
      if (succeeded && channel != kPrimary) ++r->soft_declined_then_succeeded;
    }
    const Clock::time_point scheduled = rec->second->scheduled;
    if (scheduled >= w.fault_start && scheduled < w.fault_end) {
      ++r->offered_during_fault;
      if (succeeded) ++r->succeeded_during_fault;
      if (succeeded && !failing.contains(channel)) ++r->succeeded_elsewhere_during_fault;
    }
    if (s.fault != FaultKind::none && scheduled >= w.fault_end && succeeded) {
      const int64_t after_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(scheduled - w.fault_end).count();
      auto& [all, on_primary] = after_fault[after_ms / kRecoveryBucketMs];
      ++all;
      if (channel == kPrimary) {
        ++on_primary;
        if (!recovered || scheduled < *recovered) recovered = scheduled;
      }
    }
  }
  if (recovered) {
    r->recovery_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(*recovered - w.fault_end).count();
  }
  for (const auto& [bucket, counts] : after_fault) {
    if (counts.second * 2 < counts.first) continue;
    r->traffic_back_ms = bucket * kRecoveryBucketMs;
    break;
  }
  r->p50_ms = percentile(latency_ms, 50);
  r->p99_ms = percentile(latency_ms, 99);
  r->max_ms = percentile(latency_ms, 100);
}

// The simulator's books against keel's payments and ledger, PSP by PSP: every operation that
// holds money (authorized or captured) belongs to one keel attempt on that channel, at most one
// per payment, and a settled payment holds money exactly when it succeeded, for the amount and
// fee keel booked; each PSP's clearing account in the ledger carries the simulator's totals.
class BooksCheck {
 public:
  BooksCheck(PaymentsStack& stack, ChaosResult* r) : stack_(stack), r_(r) {
    for (const std::string_view psp : kPsps) ops_[std::string(psp)] = stack.sim_operations(psp);
  }

  void check(const std::vector<json::value>& payments, const std::string& merchant) {
    for (const json::value& p : payments) check_payment(p);
    check_orphans();
    int64_t captured = 0;
    for (const std::string_view name : kPsps) {
      const std::string psp(name);
      PspBooks& b = r_->books[psp];
      for (const auto& [ref, op] : ops_[psp]) {
        if (op.at("type").as_string() != "authorization" ||
            op.at("status").as_string() != "captured") {
          continue;
        }
        b.sim_captured += op.at("captured_amount").as_int64();
        b.sim_fees += op.at("fee").as_int64();
      }
      const std::string clearing = "psp_clearing:" + psp + ":USD";
      b.clearing_debits = stack_.account_balance(clearing, "debits_posted");
      b.clearing_credits = stack_.account_balance(clearing, "credits_posted");
      const auto posted = [](int64_t v) { return v < 0 ? 0 : v; };  // no account: nothing
      if (b.sim_captured != b.keel_captured || b.sim_fees != b.keel_fees ||
          posted(b.clearing_debits) != b.sim_captured || posted(b.clearing_credits) != b.sim_fees) {
        problem(psp + ": the simulator captured " + std::to_string(b.sim_captured) + " (fees " +
                std::to_string(b.sim_fees) + "), keel's payments " +
                std::to_string(b.keel_captured) + " (" + std::to_string(b.keel_fees) +
                "), the clearing account " + std::to_string(b.clearing_debits) + " (" +
                std::to_string(b.clearing_credits) + ")");
      }
      captured += b.sim_captured;
    }
    const int64_t merchant_credits =
        stack_.account_balance("merchant:" + merchant + ":USD", "credits_posted");
    if (std::max<int64_t>(merchant_credits, 0) != captured) {
      problem("the merchant's account got " + std::to_string(merchant_credits) +
              ", the PSPs captured " + std::to_string(captured));
    }
    if (problems_ > static_cast<int64_t>(kProblemSamplesMax)) {
      r_->books_problems.push_back("... " + std::to_string(problems_ - kProblemSamplesMax) +
                                   " more");
    }
    r_->books_equal = problems_ == 0;
  }

 private:
  static constexpr size_t kProblemSamplesMax = 20;

  void problem(std::string text) {
    if (++problems_ <= static_cast<int64_t>(kProblemSamplesMax)) {
      r_->books_problems.push_back(std::move(text));
    }
  }

  void check_payment(const json::value& p) {
    const std::string id = str(p, "id");
    const std::string status = str(p, "status");
    const bool review = flag(p, "requires_review");
    int64_t captured = 0, fee = 0;
    int holding = 0;
    for (const json::value& a : p.at("attempts").as_array()) {
      if (str(a, "kind") != "authorization") continue;
      const std::string ch = str(a, "channel");
      claimed_.insert(ch + "/" + str(a, "id"));
      const auto book = ops_.find(ch);
      if (book == ops_.end()) continue;
      const auto op = book->second.find(str(a, "id"));
      if (op == book->second.end() || !holds_money(op->second)) continue;
      ++holding;
      captured += op->second.at("captured_amount").as_int64();
      fee += op->second.at("fee").as_int64();
    }
    holding_[id] = holding;
    if (holding > 1) problem(id + ": " + std::to_string(holding) + " operations hold money");
    if (review) return;  // the outcome is unknown to keel: a person compares
    if (status == "succeeded") {
      PspBooks& b = r_->books[str(p, "channel")];
      b.keel_captured += num(p, "amount_captured");
      b.keel_fees += num(p, "psp_fee");
      if (holding != 1 || captured != num(p, "amount_captured") || fee != num(p, "psp_fee")) {
        problem(id + " succeeded for " + std::to_string(num(p, "amount_captured")) + " (fee " +
                std::to_string(num(p, "psp_fee")) + "); the PSPs captured " +
                std::to_string(captured) + " (" + std::to_string(fee) + ")");
      }
    } else if (holding != 0) {
      problem(id + " is " + status + " but a PSP holds its money");
    }
  }

  // Operations holding money that no keel attempt names; each is counted against the payment
  // its reference ({payment}_a{n}) names.
  void check_orphans() {
    for (const auto& [psp, book] : ops_) {
      for (const auto& [ref, op] : book) {
        if (op.at("type").as_string() != "authorization" || !holds_money(op) ||
            claimed_.contains(psp + "/" + ref)) {
          continue;
        }
        ++r_->orphan_charges;
        problem(psp + " holds money for " + ref + ", which no keel attempt names");
        const size_t cut = ref.rfind("_a");
        ++holding_[cut == std::string::npos ? ref : ref.substr(0, cut)];
      }
    }
    for (const auto& [id, holding] : holding_) r_->double_charges += holding > 1 ? 1 : 0;
  }

  PaymentsStack& stack_;
  ChaosResult* r_;
  std::map<std::string, std::map<std::string, json::object>> ops_;  // by PSP, by reference
  std::set<std::string> claimed_;                                   // "psp/attempt id"
  std::map<std::string, int> holding_;  // operations holding money, by payment
  int64_t problems_ = 0;
};

void note(const ChaosOptions& o, std::string_view scenario, std::string_view what) {
  if (o.progress == nullptr) return;
  std::fprintf(o.progress, "chaos %.*s: %.*s\n", static_cast<int>(scenario.size()), scenario.data(),
               static_cast<int>(what.size()), what.data());
  std::fflush(o.progress);
}

std::string run_id(std::string_view scenario) {
  static std::atomic<uint64_t> next{0};
  const auto ns = std::chrono::system_clock::now().time_since_epoch().count();
  return std::string(scenario) + "-" + std::to_string(ns % 1'000'000'000) + "-" +
         std::to_string(next.fetch_add(1));
}

// Removes keeld's data directory (under ChaosOptions::data_parent) at the end of a run.
struct RemoveDir {
  std::filesystem::path dir;
  ~RemoveDir() {
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

// The breaker figures: the primary's first open after the fault started, and each channel's
// `opened` count at the end.
void breaker_figures(PaymentsStack& stack, const std::vector<ChannelWatch::Change>& changes,
                     const Window& w, ChaosResult* r) {
  for (const ChannelWatch::Change& c : changes) {
    if (c.channel != kPrimary || c.state != "open" || c.at < w.fault_start) continue;
    r->breaker_open_after_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(c.at - w.fault_start).count();
    break;
  }
  for (const auto& [id, channel] : stack.channels()) {
    const json::value* breaker = channel.if_contains("breaker");
    const int64_t opened = breaker != nullptr ? num(*breaker, "opened") : 0;
    r->books[id].breaker_opened = opened;
    if (id == kPrimary) r->breaker_opened = opened;
  }
}

// canary_errors: at `at`, gives the canary kCanarySharePct of the primary's routed payments as an
// operator would. "" or what went wrong.
std::string set_canary_share(PaymentsStack& stack, Clock::time_point at) {
  std::this_thread::sleep_until(at);
  const std::string target = "/v1/admin/channels/" + std::string(kPrimary) + "/canary";
  const JsonResponse r = stack.post_unshared(
      target, R"({"to": ")" + std::string(kCanary) + R"(", "share": )" +
                  std::to_string(kCanarySharePct) + R"(, "reason": "chaos: canary_errors"})");
  if (r.status == 200) return {};
  return "POST " + target + ": HTTP " + std::to_string(r.status) + " " + r.text.substr(0, 200);
}

// keeld's count of status queries (keel_psp_status_queries_total in /metrics); -1 if absent.
int64_t status_queries(PaymentsStack& stack) {
  constexpr std::string_view kName = "\nkeel_psp_status_queries_total ";
  const JsonResponse m = stack.get("/metrics");
  const size_t at = m.status == 200 ? m.text.find(kName) : std::string::npos;
  if (at == std::string::npos) return -1;
  int64_t n = -1;
  const char* first = m.text.data() + at + kName.size();
  const auto [end, ec] = std::from_chars(first, m.text.data() + m.text.size(), n);
  return ec == std::errc() ? n : -1;
}

// The canary's figures: its share and rollbacks from keeld's journaled controls, its attempts
// from the payments (attempt times and control times are both keeld's clock).
void canary_figures(PaymentsStack& stack, const std::vector<json::value>& payments,
                    ChaosResult* r) {
  const JsonResponse controls = stack.get("/v1/admin/controls");
  if (controls.status != 200 || !controls.body.is_object()) {
    throw std::runtime_error("GET /v1/admin/controls: " + std::to_string(controls.status) + " " +
                             controls.text.substr(0, 300));
  }
  std::optional<Timestamp> share_at, rollback_at;
  const json::array& changes = controls.body.at("changes").as_array();  // newest first
  for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
    if (str(*it, "target") != kPrimary || str(*it, "canary") != kCanary) continue;
    const std::optional<Timestamp> at = parse_rfc3339(str(*it, "at"));
    if (str(*it, "kind") == "channel_canary" && num(*it, "share") > 0 && !share_at) share_at = at;
    if (str(*it, "kind") != "canary_rollback") continue;
    if (++r->canary_rollbacks == 1) {
      rollback_at = at;
      r->canary_rollback_reason = str(*it, "reason");
    }
  }
  if (share_at && rollback_at) {
    r->canary_rollback_after_ms = (*rollback_at - *share_at) * 1'000 / kNanosPerSecond;
  }
  for (const json::value& c : controls.body.at("channels").as_array()) {
    const json::value* canary = c.as_object().if_contains("canary");
    if (str(c, "id") == kPrimary && canary != nullptr) {
      r->canary_share_at_end_pct = num(*canary, "share");
    }
  }
  for (const json::value& p : payments) {
    bool error_on_canary = false;
    for (const json::value& a : p.at("attempts").as_array()) {
      if (str(a, "kind") != "authorization" || str(a, "channel") != kCanary) continue;
      ++r->canary_attempts;
      error_on_canary = error_on_canary || str(a, "status") == "retryable";
      const std::optional<Timestamp> created = parse_rfc3339(str(a, "created_at"));
      if (rollback_at && created && *created > *rollback_at) ++r->canary_attempts_after_rollback;
    }
    if (!error_on_canary) continue;
    ++r->canary_errors;
    if (str(p, "status") == "succeeded" && !flag(p, "requires_review") &&
        str(p, "channel") != kCanary) {
      ++r->canary_errors_then_succeeded;
    }
  }
}

// What the workers saw: harness errors, 503s, late starts.
void tally_records(const std::vector<PaymentRecord>& records, ChaosResult* r) {
  for (const PaymentRecord& rec : records) {
    if (!rec.error.empty()) {
      ++r->harness_errors;
      if (r->error_samples.size() < kErrorSamplesMax) r->error_samples.push_back(rec.error);
    }
    if (rec.id.empty()) ++r->not_confirmed;  // never created
    r->no_channel_answers += rec.no_channel ? 1 : 0;
    r->delayed_starts += rec.start_delay_ms > kDelayedStartMs ? 1 : 0;
    r->start_delay_ms_max = std::max(r->start_delay_ms_max, rec.start_delay_ms);
  }
}

}  // namespace

const std::vector<Scenario>& scenarios() { return kScenarios; }

const Scenario* find_scenario(std::string_view name) {
  for (const Scenario& s : kScenarios) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::string_view> failing_psps_of(const Scenario& s) {
  if (s.fault == FaultKind::canary_errors) return {kCanary};
  return {kPsps.begin(), kPsps.begin() + static_cast<std::ptrdiff_t>(s.failing_psps)};
}

int64_t fault_ms_of(const Scenario& s, const ChaosOptions& o) {
  return s.fault == FaultKind::flap ? o.flap_fault_ms : o.fault_ms;
}

size_t workers_for(double rate_per_s, int64_t settle_wait_ms) {
  const double busy_s = static_cast<double>(settle_wait_ms) / 1000.0 + 0.5;
  return std::clamp<size_t>(static_cast<size_t>(std::ceil(rate_per_s * busy_s * 1.5)), 4, 512);
}

ChaosResult run_scenario(const Scenario& s, const ChaosOptions& o) {
  ChaosResult r;
  r.scenario = s.name;
  const int64_t fault_ms = fault_ms_of(s, o);
  if (o.rate_per_s <= 0 || o.lead_ms < 0 || fault_ms <= 0 || o.tail_ms < 0 || o.flap_ms <= 0) {
    throw std::runtime_error("chaos: the rate, the fault and the flap period must be positive");
  }
  const std::string run = run_id(s.name);
  note(o, s.name, "starting keeld and keel-psp-sim");
  const RemoveDir remove{o.data_parent.empty() ? std::filesystem::path()
                                               : o.data_parent / ("chaos-" + run)};
  std::unique_ptr<PaymentsStack> stack = start_stack(o, run);
  const std::string merchant = stack->create_merchant();
  if (merchant.empty()) throw std::runtime_error("chaos: cannot create a merchant");
  const int64_t total_ms = o.lead_ms + fault_ms + o.tail_ms;
  const auto count = static_cast<size_t>(o.rate_per_s * static_cast<double>(total_ms) / 1000.0);
  r.rate_per_s = o.rate_per_s;
  r.seconds = static_cast<double>(total_ms) / 1000.0;
  r.workers = o.workers != 0 ? o.workers : workers_for(o.rate_per_s, o.settle_wait_ms);
  r.offered = static_cast<int64_t>(count);
  const Load load{merchant, run, o.seed, stack->keeld().port(), o.settle_wait_ms + 30'000};

  ChannelWatch watch(stack->keeld().port());
  Window w;
  w.steady_zero = Clock::now();
  w.wall_zero = wall_clock_now();
  const std::string schedule = schedule_json(s, o);
  const auto start = Clock::now();  // the schedules' clocks start as they arrive
  for (const std::string_view psp : failing_psps_of(s)) {
    if (!stack->set_sim_schedule(psp, schedule)) {
      throw std::runtime_error("chaos: the simulator refused the schedule " + schedule);
    }
  }
  w.fault_start = start + std::chrono::milliseconds(o.lead_ms);
  w.fault_end = w.fault_start + std::chrono::milliseconds(fault_ms);
  std::string canary_error;
  std::jthread canary_setter;  // joins before the stack goes, whatever happens
  if (s.fault == FaultKind::canary_errors) {
    r.canary_share_set_pct = kCanarySharePct;
    canary_setter = std::jthread([&stack, &canary_error, at = w.fault_start] {
      canary_error = set_canary_share(*stack, at);
    });
  }
  note(o, s.name,
       std::to_string(count) + " payments at " + std::to_string(o.rate_per_s) + "/s, " +
           std::to_string(r.workers) + " workers; fault from " + std::to_string(o.lead_ms) +
           " ms for " + std::to_string(fault_ms) + " ms");
  const std::vector<PaymentRecord> records =
      run_open_loop(load, o.rate_per_s, count, r.workers, start);
  if (canary_setter.joinable()) canary_setter.join();
  note(o, s.name, "load done; waiting for every payment to settle");
  wait_settled(*stack, merchant, o);
  watch.stop();

  note(o, s.name, "checking the books");
  const std::vector<json::value> payments = list_payments(*stack, merchant);
  std::map<std::string, const PaymentRecord*> by_id;
  for (const PaymentRecord& rec : records) {
    if (!rec.id.empty()) by_id[rec.id] = &rec;
  }
  tally_records(records, &r);
  if (!canary_error.empty()) {
    ++r.harness_errors;
    r.error_samples.push_back(canary_error);
  }
  tally_payments(payments, by_id, s, w, &r);
  canary_figures(*stack, payments, &r);
  BooksCheck(*stack, &r).check(payments, merchant);
  breaker_figures(*stack, watch.changes(), w, &r);
  const JsonResponse status = stack->admin_status();
  r.invariants_ok = status.status == 200 && flag(status.body, "invariants_ok");
  r.success_rate =
      r.offered > 0 ? static_cast<double>(r.succeeded) / static_cast<double>(r.offered) : 0;
  r.amplification =
      r.offered > 0 ? static_cast<double>(r.authorization_attempts) / static_cast<double>(r.offered)
                    : 0;
  r.status_queries = status_queries(*stack);
  r.status_queries_per_payment =
      r.offered > 0 && r.status_queries >= 0
          ? static_cast<double>(r.status_queries) / static_cast<double>(r.offered)
          : 0;
  if (const int code = stack->keeld().stop(); code != 0) {
    r.harness_errors += 1;
    r.error_samples.push_back("keeld exited with " + std::to_string(code));
  }
  return r;
}

double measure_capacity(const ChaosOptions& o, double seconds, size_t connections) {
  const std::string run = run_id("capacity");
  const RemoveDir remove{o.data_parent.empty() ? std::filesystem::path()
                                               : o.data_parent / ("chaos-" + run)};
  std::unique_ptr<PaymentsStack> stack = start_stack(o, run);
  const std::string merchant = stack->create_merchant();
  if (merchant.empty()) throw std::runtime_error("chaos: cannot create a merchant");
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  std::atomic<uint64_t> next{0}, paid{0};
  std::mutex mu;
  std::string error;
  std::vector<std::thread> threads;
  const auto began = Clock::now();
  for (size_t c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      const auto client = keeld_client(stack->keeld().port(), o.settle_wait_ms + 30'000);
      while (Clock::now() < deadline) {
        const uint64_t i = next.fetch_add(1);
        PaymentRecord rec;
        pay(*client, merchant, amount_of(o.seed, i), run + "-" + std::to_string(i) + "-", &rec);
        if (!rec.error.empty()) {
          const std::lock_guard lock(mu);
          error = rec.error;
          return;
        }
        paid += 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!error.empty()) throw std::runtime_error("chaos: measuring capacity: " + error);
  return static_cast<double>(paid.load()) /
         std::chrono::duration<double>(Clock::now() - began).count();
}

std::string to_json(const ChaosResult& r) {
  json::object o{{"scenario", r.scenario}};
  const auto put = [&](std::string_view key, auto value) { o[key] = value; };
  put("rate_per_s", r.rate_per_s);
  put("seconds", r.seconds);
  put("workers", r.workers);
  put("offered", r.offered);
  put("succeeded", r.succeeded);
  put("failed", r.failed);
  put("in_review", r.in_review);
  put("processing", r.processing);
  put("processing_past_deadline", r.processing_past_deadline);
  put("not_confirmed", r.not_confirmed);
  put("other", r.other);
  put("harness_errors", r.harness_errors);
  o["error_samples"] = json::value_from(r.error_samples);
  put("no_channel_answers", r.no_channel_answers);
  put("delayed_starts", r.delayed_starts);
  put("start_delay_ms_max", r.start_delay_ms_max);
  put("success_rate", r.success_rate);
  put("p50_ms", r.p50_ms);
  put("p99_ms", r.p99_ms);
  put("max_ms", r.max_ms);
  put("authorization_attempts", r.authorization_attempts);
  put("same_channel_retries", r.same_channel_retries);
  put("failed_over", r.failed_over);
  put("attempts_max", r.attempts_max);
  put("amplification", r.amplification);
  put("status_queries", r.status_queries);
  put("status_queries_per_payment", r.status_queries_per_payment);
  put("offered_during_fault", r.offered_during_fault);
  put("succeeded_during_fault", r.succeeded_during_fault);
  put("succeeded_elsewhere_during_fault", r.succeeded_elsewhere_during_fault);
  put("soft_declined_on_primary", r.soft_declined_on_primary);
  put("soft_declined_then_succeeded", r.soft_declined_then_succeeded);
  put("breaker_open_after_ms", r.breaker_open_after_ms);
  put("breaker_opened", r.breaker_opened);
  put("recovery_ms", r.recovery_ms);
  put("traffic_back_ms", r.traffic_back_ms);
  put("canary_share_set_pct", r.canary_share_set_pct);
  put("canary_rollbacks", r.canary_rollbacks);
  put("canary_rollback_after_ms", r.canary_rollback_after_ms);
  put("canary_rollback_reason", r.canary_rollback_reason);
  put("canary_share_at_end_pct", r.canary_share_at_end_pct);
  put("canary_attempts", r.canary_attempts);
  put("canary_attempts_after_rollback", r.canary_attempts_after_rollback);
  put("canary_errors", r.canary_errors);
  put("canary_errors_then_succeeded", r.canary_errors_then_succeeded);
  put("double_charges", r.double_charges);
  put("orphan_charges", r.orphan_charges);
  put("books_equal", r.books_equal);
  o["books_problems"] = json::value_from(r.books_problems);
  put("invariants_ok", r.invariants_ok);
  json::object books;
  for (const auto& [psp, b] : r.books) {
    books[psp] = json::object{{"sim_captured", b.sim_captured},
                              {"sim_fees", b.sim_fees},
                              {"keel_captured", b.keel_captured},
                              {"keel_fees", b.keel_fees},
                              {"clearing_debits", b.clearing_debits},
                              {"clearing_credits", b.clearing_credits},
                              {"authorization_attempts", b.authorization_attempts},
                              {"succeeded", b.succeeded},
                              {"breaker_opened", b.breaker_opened}};
  }
  o["psps"] = std::move(books);
  return json::serialize(o);
}

std::string summary(const ChaosResult& r) {
  char line[512];
  std::string out;
  std::snprintf(line, sizeof line,
                "%s: %lld offered at %.1f/s over %.0f s (%zu workers, %lld started late, up to "
                "%.0f ms)\n",
                r.scenario.c_str(), static_cast<long long>(r.offered), r.rate_per_s, r.seconds,
                r.workers, static_cast<long long>(r.delayed_starts), r.start_delay_ms_max);
  out += line;
  std::snprintf(line, sizeof line,
                "  succeeded %lld, failed %lld, review %lld, processing %lld (past deadline "
                "%lld), not confirmed %lld, other %lld; 503 no channel %lld; harness errors "
                "%lld\n",
                static_cast<long long>(r.succeeded), static_cast<long long>(r.failed),
                static_cast<long long>(r.in_review), static_cast<long long>(r.processing),
                static_cast<long long>(r.processing_past_deadline),
                static_cast<long long>(r.not_confirmed), static_cast<long long>(r.other),
                static_cast<long long>(r.no_channel_answers),
                static_cast<long long>(r.harness_errors));
  out += line;
  std::snprintf(line, sizeof line,
                "  latency p50 %.0f ms, p99 %.0f ms, max %.0f ms; authorizations %lld (%.3fx, "
                "%lld payments failed over, %lld same-channel retries, at most %lld a payment); "
                "status queries %lld (%.3f a payment)\n",
                r.p50_ms, r.p99_ms, r.max_ms, static_cast<long long>(r.authorization_attempts),
                r.amplification, static_cast<long long>(r.failed_over),
                static_cast<long long>(r.same_channel_retries),
                static_cast<long long>(r.attempts_max), static_cast<long long>(r.status_queries),
                r.status_queries_per_payment);
  out += line;
  std::snprintf(line, sizeof line,
                "  during the fault: %lld offered, %lld succeeded, %lld on a healthy PSP; soft "
                "declines on p1 %lld, then succeeded %lld; breaker open after %lld ms (opened "
                "%lld); first success on p1 %lld ms after the fault, half of them %lld ms after\n",
                static_cast<long long>(r.offered_during_fault),
                static_cast<long long>(r.succeeded_during_fault),
                static_cast<long long>(r.succeeded_elsewhere_during_fault),
                static_cast<long long>(r.soft_declined_on_primary),
                static_cast<long long>(r.soft_declined_then_succeeded),
                static_cast<long long>(r.breaker_open_after_ms),
                static_cast<long long>(r.breaker_opened), static_cast<long long>(r.recovery_ms),
                static_cast<long long>(r.traffic_back_ms));
  out += line;
  if (r.canary_share_set_pct > 0) {
    std::snprintf(
        line, sizeof line,
        "  canary: share %lld %% set at the fault's start; %lld authorizations (%lld after "
        "the rollback), %lld payments it failed (%lld then succeeded elsewhere); rolled "
        "back %lld times, first after %lld ms (%s); share at the end %lld %%\n",
        static_cast<long long>(r.canary_share_set_pct), static_cast<long long>(r.canary_attempts),
        static_cast<long long>(r.canary_attempts_after_rollback),
        static_cast<long long>(r.canary_errors),
        static_cast<long long>(r.canary_errors_then_succeeded),
        static_cast<long long>(r.canary_rollbacks),
        static_cast<long long>(r.canary_rollback_after_ms), r.canary_rollback_reason.c_str(),
        static_cast<long long>(r.canary_share_at_end_pct));
    out += line;
  }
  std::snprintf(line, sizeof line,
                "  double charges %lld, orphan charges %lld, books %s, invariants %s\n",
                static_cast<long long>(r.double_charges), static_cast<long long>(r.orphan_charges),
                r.books_equal ? "equal" : "DIFFER", r.invariants_ok ? "ok" : "BROKEN");
  out += line;
  for (const auto& [psp, b] : r.books) {
    std::snprintf(line, sizeof line,
                  "  %s: %lld authorizations, %lld succeeded, breaker opened %lld; captured sim "
                  "%lld keel %lld clearing %lld; fees sim %lld keel %lld clearing %lld\n",
                  psp.c_str(), static_cast<long long>(b.authorization_attempts),
                  static_cast<long long>(b.succeeded), static_cast<long long>(b.breaker_opened),
                  static_cast<long long>(b.sim_captured), static_cast<long long>(b.keel_captured),
                  static_cast<long long>(b.clearing_debits), static_cast<long long>(b.sim_fees),
                  static_cast<long long>(b.keel_fees), static_cast<long long>(b.clearing_credits));
    out += line;
  }
  for (const std::string& p : r.books_problems) out += "  books: " + p + "\n";
  for (const std::string& e : r.error_samples) out += "  error: " + e + "\n";
  return out;
}

}  // namespace keel::testing::chaos
