#include "psp_sim/simulator.h"

#include <algorithm>
#include <boost/json.hpp>
#include <map>

#include "core/assert.h"
#include "psp_sim/codec.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

enum class PspRoute : uint8_t {
  authorize,      // POST authorizations
  capture,        // POST authorizations/{reference}/capture
  void_auth,      // POST authorizations/{reference}/void
  refund,         // POST refunds
  payout,         // POST payouts
  topup,          // POST topups
  get_operation,  // GET operations/{reference}
  settlement,     // GET settlements/{YYYY-MM-DD}.csv
};

constexpr int64_t kNanosPerMs = kNanosPerSecond / 1000;

// Bound on the retry counters of one PSP: past it they start over (decisions stay a function of
// the seed, only the attempt numbering restarts).
constexpr size_t kAttemptCountersMax = 1'000'000;

std::vector<std::string_view> split_path(std::string_view target) {
  target = target.substr(0, target.find('?'));
  std::vector<std::string_view> parts;
  while (!target.empty()) {
    if (target.front() == '/') {
      target.remove_prefix(1);
      continue;
    }
    const size_t slash = target.find('/');
    parts.push_back(target.substr(0, slash));
    target = slash == std::string_view::npos ? std::string_view() : target.substr(slash);
  }
  return parts;
}

SimReply error_reply(unsigned status, std::string_view code, std::string_view message) {
  return SimReply{status, error_body(code, message)};
}

SimReply json_reply(const json::value& v) { return SimReply{200, json::serialize(v)}; }

SimReply outcome_reply(const Outcome& o) {
  switch (o.result) {
    case BookResult::ok:
      return json_reply(operation_to_json(o.operation));
    case BookResult::reference_reused:
      return error_reply(409, "reference_reused", "the reference is used by another request");
    case BookResult::not_found:
      return error_reply(404, "not_found", "no such operation");
    case BookResult::invalid_state:
      return error_reply(409, "invalid_state", "the operation's state forbids this");
    case BookResult::amount_exceeds:
      return error_reply(422, "amount_exceeds", "above what may be captured or refunded");
    case BookResult::currency_not_accepted:
      return error_reply(400, "currency_not_accepted", "this PSP does not take the currency");
    case BookResult::books_full:
      return error_reply(503, "unavailable", "the simulator's books are full");
  }
  return error_reply(500, "internal", "unknown result");
}

// The PSP route of `parts` after /psp/{psp}/v1, with its path reference; false if none.
bool match_psp_route(std::string_view method, const std::vector<std::string_view>& parts,
                     PspRoute* route, std::string_view* reference) {
  const size_t n = parts.size();
  if (n < 4) return false;
  const std::string_view head = parts[3];
  if (method == "POST" && n == 4) {
    if (head == "authorizations") return *route = PspRoute::authorize, true;
    if (head == "refunds") return *route = PspRoute::refund, true;
    if (head == "payouts") return *route = PspRoute::payout, true;
    if (head == "topups") return *route = PspRoute::topup, true;
  }
  if (method == "POST" && n == 6 && head == "authorizations") {
    *reference = parts[4];
    if (parts[5] == "capture") return *route = PspRoute::capture, true;
    if (parts[5] == "void") return *route = PspRoute::void_auth, true;
  }
  if (method == "GET" && n == 5 && head == "operations") {
    *reference = parts[4];
    return *route = PspRoute::get_operation, true;
  }
  if (method == "GET" && n == 5 && head == "settlements" && parts[4].ends_with(".csv")) {
    *reference = parts[4].substr(0, parts[4].size() - 4);
    return *route = PspRoute::settlement, true;
  }
  return false;
}

// The reference a create request's body names, or "" (the decisions then key on the target).
std::string body_reference(std::string_view body) {
  json::error_code ec;
  const json::value v = json::parse(json::string_view(body.data(), body.size()), ec);
  const json::value* r = !ec && v.is_object() ? v.get_object().if_contains("reference") : nullptr;
  return r != nullptr && r->is_string() ? std::string(r->get_string()) : std::string();
}

// Parses an admin request's JSON body; "" or the message of a 400.
std::string parse_json_body(std::string_view body, json::value* out) {
  json::error_code ec;
  *out = json::parse(json::string_view(body.data(), body.size()), ec);
  return ec ? "the body is not valid JSON" : "";
}

SimReply schedule_in_force(const std::string& psp) {
  return error_reply(409, "schedule_in_force",
                     "a fault schedule decides " + psp + "'s faults and listener: DELETE " +
                         "/admin/psps/" + psp + "/schedule first");
}

}  // namespace

struct Simulator::PspState {
  explicit PspState(BooksOptions options, FaultConfig f, uint64_t seed, const std::string& name)
      : books(std::move(options)), faults(std::move(f)), decider(seed, name) {}

  // What is in force at `now`: the schedule's phase, or else `faults` and `accepting`.
  struct InForce {
    const FaultConfig* faults = nullptr;
    bool accepting = true;
    std::optional<SchedulePosition> position;  // with a schedule
    int64_t elapsed_ms = 0;                    // since the schedule was set, >= 0
  };
  // REQUIRES: mu held.
  [[nodiscard]] InForce in_force(Timestamp now) const {
    if (!schedule) return InForce{&faults, accepting, std::nullopt, 0};
    const int64_t elapsed_ms = std::max<int64_t>(0, (now - schedule_set_at) / kNanosPerMs);
    const SchedulePosition position = schedule_position(*schedule, elapsed_ms);
    const SchedulePhase& phase = schedule->phases[position.phase];
    return InForce{&phase.faults, phase.accepting, position, elapsed_ms};
  }

  std::mutex mu;
  Books books;
  FaultConfig faults;     // the config's, or the last PUT faults
  bool accepting = true;  // the last PUT listener
  std::optional<FaultSchedule> schedule;
  Timestamp schedule_set_at = 0;
  uint16_t listener_port = 0;  // as the server noted it
  bool listening = false;
  std::map<std::string, uint64_t, std::less<>> attempts;  // per subject
  // The API keys accepted: the config's, or the last PUT api_keys (a rotation's overlap: two).
  std::vector<std::string> api_keys;
  const FaultDecider decider;
};

Simulator::Simulator(SimConfig config, uint64_t seed, Timestamp start)
    : config_(std::move(config)), seed_(seed) {
  for (const PspConfig& p : config_.psps) {
    BooksOptions options;
    options.psp = p.name;
    options.key = SipKey{seed, siphash13(SipKey{seed, 0}, p.name)};
    options.fee_fixed = p.fee_fixed;
    options.fee_bps = p.fee_bps;
    options.currencies = p.currencies;
    auto state = std::make_unique<PspState>(std::move(options), p.faults, seed, p.name);
    state->schedule = p.schedule;
    state->schedule_set_at = start;
    state->api_keys = {p.api_key};
    psps_.push_back(std::move(state));
  }
}

Simulator::~Simulator() = default;

size_t Simulator::psp_index(std::string_view name) const {
  for (size_t i = 0; i < config_.psps.size(); ++i) {
    if (config_.psps[i].name == name) return i;
  }
  return psps_.size();
}

Admission Simulator::admit(const SimRequest& request, Timestamp now) {
  Admission a;
  const auto parts = split_path(request.target);
  const bool admin_route = !parts.empty() && parts[0] == "admin";
  if (admin_route && !request.listener_psp) {
    admin(request, now, &a);
    return a;
  }
  if (admin_route || parts.size() < 3 || parts[0] != "psp" || parts[2] != "v1") {
    a.reply = error_reply(404, "route_not_found", "no such route");
    return a;
  }
  const size_t index = psp_index(parts[1]);
  if (index == psps_.size()) {
    a.reply = error_reply(404, "psp_not_found", "no such PSP");
    return a;
  }
  if (request.listener_psp && *request.listener_psp != index) {
    a.reply = error_reply(404, "psp_not_found",
                          "this port serves PSP " + config_.psps[*request.listener_psp].name);
    return a;
  }
  if (!authorized(index, request.authorization)) {
    a.reply = error_reply(401, "unauthorized", "missing or wrong API key");
    return a;
  }
  PspRoute route{};
  std::string_view path_reference;
  if (!match_psp_route(request.method, parts, &route, &path_reference)) {
    a.reply = error_reply(404, "route_not_found", "no such route");
    return a;
  }
  a.psp = index;
  a.route = static_cast<uint8_t>(route);
  a.subject = std::string(path_reference);
  if (a.subject.empty()) a.subject = body_reference(request.body);
  if (a.subject.empty()) a.subject = std::string(request.target);
  PspState& psp = *psps_[index];
  {
    std::lock_guard lock(psp.mu);
    a.faults = *psp.in_force(now).faults;
    if (psp.attempts.size() >= kAttemptCountersMax) psp.attempts.clear();
    a.attempt = psp.attempts[a.subject]++;
  }
  const FaultDecider& d = psp.decider;
  if (d.happens(a.faults.refuse_rate, a.subject, "refuse", a.attempt)) {
    a.kind = Admission::Kind::refuse;
    return a;
  }
  if (d.happens(a.faults.error_5xx_rate, a.subject, "error_5xx", a.attempt)) {
    a.reply = error_reply(503, "unavailable", "try again later");
    return a;
  }
  a.kind = Admission::Kind::process;
  a.latency_ms = d.pick_ms(a.faults.latency_ms, a.subject, "latency", a.attempt);
  return a;
}

// Applies one PSP route to `books`; "" or the message of a 400.
static std::string apply_route(PspRoute route, const SimRequest& request, const Admission& a,
                               const FaultDecider& d, Books& books, Timestamp now,
                               Outcome* outcome) {
  std::string err;
  switch (route) {
    case PspRoute::authorize: {
      AuthorizeRequest r;
      err = parse_authorize(request.body, &r);
      if (err.empty())
        *outcome = books.authorize(r, d.operation_decisions(a.faults, r.reference), now);
      return err;
    }
    case PspRoute::capture: {
      std::optional<int64_t> amount;
      err = parse_capture(request.body, &amount);
      if (err.empty()) *outcome = books.capture(a.subject, amount, now);
      return err;
    }
    case PspRoute::void_auth:
      *outcome = books.void_authorization(a.subject, now);
      return err;
    case PspRoute::refund: {
      RefundRequest r;
      err = parse_refund(request.body, &r);
      if (err.empty()) *outcome = books.refund(r, now);
      return err;
    }
    case PspRoute::payout:
    case PspRoute::topup: {
      TransferRequest r;
      const bool payout = route == PspRoute::payout;
      err = payout ? parse_payout(request.body, &r) : parse_topup(request.body, &r);
      if (!err.empty()) return err;
      const Decisions decisions = d.operation_decisions(a.faults, r.reference);
      *outcome = payout ? books.payout(r, decisions, now) : books.topup(r, decisions, now);
      return err;
    }
    case PspRoute::get_operation: {
      const Operation* op = books.find(a.subject);
      outcome->result = op != nullptr ? BookResult::ok : BookResult::not_found;
      if (op != nullptr) outcome->operation = *op;
      return err;
    }
    case PspRoute::settlement:
      break;  // process() answers it
  }
  KEEL_ASSERT(false);
  return err;
}

Processed Simulator::process(const SimRequest& request, const Admission& a, Timestamp now) {
  KEEL_ASSERT(a.kind == Admission::Kind::process && a.psp < psps_.size());
  PspState& psp = *psps_[a.psp];
  const FaultDecider& d = psp.decider;
  const auto route = static_cast<PspRoute>(a.route);
  Processed p;
  if (route == PspRoute::settlement) {  // a read: no faults after processing
    const auto day = parse_day(a.subject);
    if (!day) {
      p.reply = error_reply(400, "invalid_request", "the settlement date is YYYY-MM-DD");
      return p;
    }
    std::lock_guard lock(psp.mu);
    p.reply = SimReply{200, psp.books.settlement_csv(*day), "text/csv"};
    return p;
  }
  Outcome outcome;
  std::string err;
  {
    std::lock_guard lock(psp.mu);
    err = apply_route(route, request, a, d, psp.books, now, &outcome);
  }
  p.reply = err.empty() ? outcome_reply(outcome) : error_reply(400, "invalid_request", err);
  p.effects = effects_of(a.psp, a.faults, outcome.events);
  if (d.happens(a.faults.black_hole_rate, a.subject, "black_hole", a.attempt)) {
    p.delivery = Delivery::black_hole;
  } else if (d.happens(a.faults.response_lost_rate, a.subject, "response_lost", a.attempt)) {
    p.delivery = Delivery::response_lost;
  }
  return p;
}

Effects Simulator::settle(size_t index, const std::string& reference, Timestamp now) {
  KEEL_ASSERT(index < psps_.size());
  PspState& psp = *psps_[index];
  Outcome outcome;
  FaultConfig faults;
  {
    std::lock_guard lock(psp.mu);
    outcome = psp.books.settle(reference, now);
    faults = *psp.in_force(now).faults;
  }
  KEEL_ASSERT(outcome.result == BookResult::ok);
  return effects_of(index, faults, outcome.events);
}

Effects Simulator::effects_of(size_t index, const FaultConfig& faults,
                              const std::vector<Event>& events) const {
  Effects out;
  const PspConfig& config = config_.psps[index];
  const FaultDecider& d = psps_[index]->decider;
  for (const Event& e : events) {
    if (e.operation.status == OperationStatus::pending) {
      out.settles.push_back(
          AsyncSettle{index, e.operation.reference,
                      d.pick_ms(faults.async_delay_ms, e.operation.reference, "async_delay")});
    }
    if (!config.webhook || d.happens(faults.webhook_loss_rate, e.id, "webhook_loss")) continue;
    OutgoingWebhook w;
    w.psp = index;
    w.event_id = e.id;
    w.body = event_body(e);
    w.delay_ms = d.pick_ms(faults.webhook_delay_ms, e.id, "webhook_delay");
    w.duplicate = d.happens(faults.webhook_duplicate_rate, e.id, "webhook_duplicate");
    w.reorder = faults.webhook_reorder;
    out.webhooks.push_back(std::move(w));
  }
  return out;
}

ListenerPlan Simulator::listener_plan(size_t index, Timestamp now) {
  KEEL_ASSERT(index < psps_.size() && config_.psps[index].listen);
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  const PspState::InForce f = psp.in_force(now);
  ListenerPlan plan;
  plan.accepting = f.accepting;
  if (f.position && f.position->next_change_ms) {
    plan.next_change_at = psp.schedule_set_at + *f.position->next_change_ms * kNanosPerMs;
  }
  return plan;
}

void Simulator::note_listener(size_t index, uint16_t port, bool listening) {
  KEEL_ASSERT(index < psps_.size() && config_.psps[index].listen);
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  psp.listener_port = port;
  psp.listening = listening;
}

void Simulator::admin(const SimRequest& request, Timestamp now, Admission* a) {
  const auto parts = split_path(request.target);
  if (request.method == "GET" && parts.size() == 2 && parts[1] == "healthz") {
    a->reply = json_reply(json::object{{"status", "ok"}});
    return;
  }
  if (request.method == "GET" && parts.size() == 2 && parts[1] == "psps") {
    a->reply = admin_list(now);
    return;
  }
  if (parts.size() != 4 || parts[1] != "psps") {
    a->reply = error_reply(404, "route_not_found", "no such route");
    return;
  }
  const size_t index = psp_index(parts[2]);
  if (index == psps_.size()) {
    a->reply = error_reply(404, "psp_not_found", "no such PSP");
  } else if (request.method == "PUT" && parts[3] == "faults") {
    a->reply = put_faults(index, request.body);
  } else if (request.method == "PUT" && parts[3] == "api_keys") {
    a->reply = put_api_keys(index, request.body);
  } else if (request.method == "GET" && parts[3] == "operations") {
    a->reply = operations(index);
  } else if (parts[3] == "listener") {
    a->reply = listener(index, request, now, &a->listeners_changed);
  } else if (parts[3] == "schedule") {
    a->reply = schedule(index, request, now, &a->listeners_changed);
  } else {
    a->reply = error_reply(404, "route_not_found", "no such route");
  }
  if (a->listeners_changed) a->psp = index;
}

SimReply Simulator::admin_list(Timestamp now) {
  json::array list;
  for (size_t i = 0; i < psps_.size(); ++i) {
    std::lock_guard lock(psps_[i]->mu);
    list.emplace_back(json::object{{"name", config_.psps[i].name},
                                   {"faults", faults_to_json(*psps_[i]->in_force(now).faults)}});
  }
  return json_reply(json::object{{"psps", std::move(list)}});
}

SimReply Simulator::put_faults(size_t index, std::string_view body) {
  json::value v;
  FaultConfig faults;
  std::string err = parse_json_body(body, &v);
  if (err.empty()) err = parse_faults(v, &faults);
  if (!err.empty()) return error_reply(400, "invalid_request", err);
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  if (psp.schedule) return schedule_in_force(config_.psps[index].name);
  psp.faults = faults;
  return json_reply(
      json::object{{"name", config_.psps[index].name}, {"faults", faults_to_json(faults)}});
}

bool Simulator::authorized(size_t index, std::string_view authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  if (!authorization.starts_with(kBearer)) return false;
  const std::string_view key = authorization.substr(kBearer.size());
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  return std::find(psp.api_keys.begin(), psp.api_keys.end(), key) != psp.api_keys.end();
}

SimReply Simulator::put_api_keys(size_t index, std::string_view body) {
  json::value v;
  std::string err = parse_json_body(body, &v);
  std::vector<std::string> keys;
  const json::object* o = err.empty() ? v.if_object() : nullptr;
  const json::value* list = o != nullptr && o->size() == 1 ? o->if_contains("keys") : nullptr;
  if (err.empty() && (list == nullptr || !list->is_array() || list->get_array().empty() ||
                      list->get_array().size() > 4)) {
    err = R"(expected {"keys": [1 to 4 API keys]})";
  }
  for (size_t i = 0; err.empty() && i < list->get_array().size(); ++i) {
    const json::value& k = list->get_array()[i];
    if (!k.is_string() || k.get_string().empty() || k.get_string().size() > 256) {
      err = "each key is a string of 1 to 256 bytes";
    } else {
      keys.emplace_back(k.get_string());
    }
  }
  if (!err.empty()) return error_reply(400, "invalid_request", err);
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  psp.api_keys = std::move(keys);
  // The keys themselves are never echoed.
  return json_reply(json::object{{"name", config_.psps[index].name},
                                 {"keys", static_cast<int64_t>(psp.api_keys.size())}});
}

SimReply Simulator::operations(size_t index) {
  PspState& psp = *psps_[index];
  json::array ops;
  json::array totals;
  std::lock_guard lock(psp.mu);
  for (const Operation& op : psp.books.operations()) ops.emplace_back(operation_to_json(op));
  for (const Total& t : psp.books.totals()) {
    totals.emplace_back(json::object{{"status", status_name(t.status)},
                                     {"currency", t.currency.code()},
                                     {"count", t.count},
                                     {"amount", t.amount}});
  }
  return json_reply(json::object{{"name", config_.psps[index].name},
                                 {"operations", std::move(ops)},
                                 {"totals", std::move(totals)}});
}

SimReply Simulator::listener(size_t index, const SimRequest& request, Timestamp now,
                             bool* changed) {
  const PspConfig& config = config_.psps[index];
  const bool put = request.method == "PUT";
  if (!put && request.method != "GET") return error_reply(404, "route_not_found", "no such route");
  if (!config.listen) {
    return error_reply(404, "listener_not_found",
                       config.name + " has no listener of its own (listen in its config)");
  }
  bool accepting = true;
  if (put) {
    json::value v;
    std::string err = parse_json_body(request.body, &v);
    const json::object* o = v.if_object();
    const json::value* value = o != nullptr ? o->if_contains("accepting") : nullptr;
    if (err.empty() && (o == nullptr || o->size() != 1 || value == nullptr || !value->is_bool())) {
      err = R"(expected {"accepting": true | false})";
    }
    if (!err.empty()) return error_reply(400, "invalid_request", err);
    accepting = value->get_bool();
  }
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  if (put && psp.schedule) return schedule_in_force(config.name);
  if (put) {
    psp.accepting = accepting;
    *changed = true;
  }
  // A PUT answers the state the server establishes before it sends the answer (SimServer).
  return json_reply(json::object{{"name", config.name},
                                 {"port", psp.listener_port},
                                 {"accepting", psp.in_force(now).accepting},
                                 {"listening", put ? accepting : psp.listening}});
}

SimReply Simulator::schedule(size_t index, const SimRequest& request, Timestamp now,
                             bool* changed) {
  const PspConfig& config = config_.psps[index];
  const bool put = request.method == "PUT";
  const bool remove = request.method == "DELETE";
  if (!put && !remove && request.method != "GET") {
    return error_reply(404, "route_not_found", "no such route");
  }
  FaultSchedule parsed;
  if (put) {
    json::value v;
    std::string err = parse_json_body(request.body, &v);
    if (err.empty()) err = parse_schedule(v, &parsed);
    if (err.empty()) err = check_accepting(parsed, config.listen.has_value());
    if (!err.empty()) return error_reply(400, "invalid_request", err);
  }
  PspState& psp = *psps_[index];
  std::lock_guard lock(psp.mu);
  if (put || (remove && psp.schedule)) *changed = config.listen.has_value();
  if (put) {
    psp.schedule = std::move(parsed);
    psp.schedule_set_at = now;
  } else if (remove) {
    psp.schedule.reset();
  }
  const PspState::InForce f = psp.in_force(now);
  json::object o{{"name", config.name}};
  o["schedule"] = psp.schedule ? json::value(schedule_to_json(*psp.schedule)) : nullptr;
  o["set_at"] = psp.schedule ? json::value(format_rfc3339(psp.schedule_set_at)) : nullptr;
  o["elapsed_ms"] = f.position ? json::value(f.elapsed_ms) : nullptr;
  o["phase"] = f.position ? json::value(f.position->phase) : nullptr;
  o["next_change_in_ms"] = f.position && f.position->next_change_ms
                               ? json::value(*f.position->next_change_ms - f.elapsed_ms)
                               : nullptr;
  o["faults"] = faults_to_json(*f.faults);
  o["accepting"] = f.accepting;
  return json_reply(o);
}

}  // namespace keel::psp_sim
