#include "routing/router.h"

#include <algorithm>
#include <utility>

namespace keel::routing {
namespace {

constexpr int64_t kMillion = 1'000'000;

size_t latency_bin(int64_t ms) {
  const auto it = std::lower_bound(kLatencyBinsMs.begin(), kLatencyBinsMs.end(), ms,
                                   [](uint32_t bound, int64_t v) { return bound < v; });
  return static_cast<size_t>(it - kLatencyBinsMs.begin());
}

// The estimated approval rate: the window's approvals over its decided calls, after a prior of
// kPriorApproved approvals in kPriorCalls calls (95 %), so a channel with few calls is neither
// written off by one failure nor trusted on one success. A hard decline is the card's answer,
// not the channel's failure, so it is left out.
constexpr uint64_t kPriorApproved = 19;
constexpr uint64_t kPriorCalls = 20;
uint32_t success_ppm(const ChannelCounts& c) {
  const uint64_t failed = uint64_t{c.declined_soft} + c.retryable + c.unknown;
  return static_cast<uint32_t>((c.approved + kPriorApproved) * kMillion /
                               (c.approved + failed + kPriorCalls));
}

bool contains(std::span<const std::string> names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

ChannelCounts& ChannelCounts::operator+=(const ChannelCounts& o) {
  attempts += o.attempts;
  approved += o.approved;
  declined_hard += o.declined_hard;
  declined_soft += o.declined_soft;
  retryable += o.retryable;
  unknown += o.unknown;
  for (size_t i = 0; i < latency.size(); ++i) latency[i] += o.latency[i];
  return *this;
}

ChannelCounts& ChannelCounts::operator-=(const ChannelCounts& o) {
  attempts -= o.attempts;
  approved -= o.approved;
  declined_hard -= o.declined_hard;
  declined_soft -= o.declined_soft;
  retryable -= o.retryable;
  unknown -= o.unknown;
  for (size_t i = 0; i < latency.size(); ++i) latency[i] -= o.latency[i];
  return *this;
}

uint32_t ChannelCounts::latency_quantile_ms(double q) const {
  uint64_t total = 0;
  for (const uint32_t n : latency) total += n;
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(q * static_cast<double>(total));
  uint64_t seen = 0;
  for (size_t i = 0; i < latency.size(); ++i) {
    seen += latency[i];
    if (seen > rank) return i < kLatencyBinsMs.size() ? kLatencyBinsMs[i] : kLatencyBinsMs.back();
  }
  return kLatencyBinsMs.back();
}

std::string router_options_problem(const RouterOptions& o) {
  if (std::string p = breaker_options_problem(o.breaker); !p.empty()) return "breaker: " + p;
  if (o.retry_budget_pct > 100) return "retry_budget_pct must be from 0 to 100";
  if (o.retry_budget_min > 1'000'000) return "retry_budget_min must be at most 1000000";
  if (o.max_tries < 1 || o.max_tries > 16) return "max_tries must be from 1 to 16";
  if (o.backoff_base_ms < 0 || o.backoff_max_ms < o.backoff_base_ms || o.backoff_max_ms > 600'000) {
    return "backoff: need 0 <= backoff_base_ms <= backoff_max_ms <= 600000";
  }
  if (o.explore_permille > 1000) return "explore_permille must be from 0 to 1000";
  if (o.latency_penalty_ppm_per_s > 1'000'000) {
    return "latency_penalty_ppm_per_s must be at most 1000000";
  }
  if (o.stats_bucket_ms < 100 || o.stats_bucket_ms > 600'000) {
    return "stats_bucket_ms must be from 100 to 600000";
  }
  if (o.canary_min_samples < 1 || o.canary_min_samples > 1'000'000) {
    return "canary_min_samples must be from 1 to 1000000";
  }
  if (o.canary_margin_pct > 100) return "canary_margin_pct must be from 0 to 100";
  if (o.success_band_ppm > 1'000'000) return "success_band_ppm must be at most 1000000";
  return {};
}

Router::Router(RouterOptions options, std::vector<ChannelDef> channels)
    : options_(options), random_state_(options.seed) {
  KEEL_ASSERT(router_options_problem(options_).empty() && channels_problem(channels).empty());
  channels_.reserve(channels.size());
  for (ChannelDef& def : channels) {
    channels_.emplace_back(std::move(def), options_);
  }
}

int Router::index_of(std::string_view name) const {
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (channels_[i].def.name == name) return static_cast<int>(i);
  }
  return -1;
}

// splitmix64: small, fast, and the same sequence everywhere for a seed.
uint64_t Router::next_random() {
  uint64_t z = (random_state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::optional<Rejection> Router::reject(size_t i, const RouteRequest& r, bool retry,
                                        Timestamp now) {
  Channel& ch = channels_[i];
  if (!carries(ch.def, r.flow)) return Rejection::flow;
  if (!accepts_currency(ch.def, r.currency)) return Rejection::currency;
  if (r.amount < ch.def.min_amount) return Rejection::amount_below_min;
  if (r.amount > ch.def.max_amount) return Rejection::amount_above_max;
  if (ch.control.paused) return Rejection::paused;
  if (ch.control.draining) return Rejection::draining;
  if (!ch.breaker.admits()) return Rejection::breaker_open;  // tick() moves it to half-open
  if (ch.in_flight >= ch.def.concurrency_max) return Rejection::concurrency_full;
  if (retry) {
    const Budget& b = ch.budget.total(now);
    const uint64_t allowed =
        uint64_t{b.firsts} * options_.retry_budget_pct / 100 + options_.retry_budget_min;
    if (b.retries >= allowed) return Rejection::retry_budget;
  }
  return std::nullopt;
}

Candidate Router::score(size_t i, int64_t amount, Timestamp now) {
  Channel& ch = channels_[i];
  const ChannelCounts& c = ch.recent.total(now);
  Candidate out;
  out.channel = ch.def.name;
  out.success_ppm = success_ppm(c);
  out.cost_ppm = cost_ppm(ch.def, amount);
  out.latency_p50_ms = c.latency_quantile_ms(0.5);
  out.samples = c.attempts;
  const int64_t latency_penalty =
      int64_t{out.latency_p50_ms} * options_.latency_penalty_ppm_per_s / 1000;
  out.score_ppm = static_cast<int32_t>(int64_t{out.success_ppm} - out.cost_ppm - latency_penalty);
  return out;
}

Decision Router::decide(const RouteRequest& r, Timestamp now) {
  Decision d;
  d.try_number = static_cast<uint32_t>(r.tried.size() + 1);
  if (r.tried.size() >= options_.max_tries) {
    d.tries_exhausted = true;
    return d;
  }
  // Eligible channels, untried ones first (a failover is a first attempt where it goes).
  std::vector<size_t> untried;
  std::vector<size_t> tried;
  if (!r.pinned.empty()) {
    const int i = index_of(r.pinned);
    if (i < 0) {
      d.rejected.push_back({std::string(r.pinned), Rejection::not_found});
      return d;
    }
    const bool retry = contains(r.tried, r.pinned);
    if (const auto why = reject(static_cast<size_t>(i), r, retry, now)) {
      d.rejected.push_back({std::string(r.pinned), *why});
      return d;
    }
    (retry ? tried : untried).push_back(static_cast<size_t>(i));
  } else {
    for (size_t i = 0; i < channels_.size(); ++i) {
      const bool retry = contains(r.tried, channels_[i].def.name);
      if (!channels_[i].def.canary_of.empty() && !retry) {
        d.rejected.push_back({channels_[i].def.name, Rejection::canary_only});
        continue;
      }
      if (const auto why = reject(i, r, retry, now)) {
        d.rejected.push_back({channels_[i].def.name, *why});
        continue;
      }
      (retry ? tried : untried).push_back(i);
    }
  }
  std::vector<size_t>& group = untried.empty() ? tried : untried;
  if (group.empty()) return d;
  if (&group == &untried) {
    for (const size_t i : tried)
      d.rejected.push_back({channels_[i].def.name, Rejection::already_tried});
  }
  d.candidates.reserve(group.size());
  for (const size_t i : group) d.candidates.push_back(score(i, r.amount, now));
  // Approval rates within success_band_ppm of the best count as the best: estimates from
  // different numbers of calls are not told apart by noise, and cost and latency decide.
  uint32_t best_success = 0;
  for (const Candidate& c : d.candidates) best_success = std::max(best_success, c.success_ppm);
  for (Candidate& c : d.candidates) {
    const int64_t success = c.success_ppm + int64_t{options_.success_band_ppm} >= best_success
                                ? best_success
                                : c.success_ppm;
    const int64_t latency_penalty =
        int64_t{c.latency_p50_ms} * options_.latency_penalty_ppm_per_s / 1000;
    c.score_ppm = static_cast<int32_t>(success - c.cost_ppm - latency_penalty);
  }
  std::vector<size_t> order(group.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Candidate& x = d.candidates[a];
    const Candidate& y = d.candidates[b];
    if (x.score_ppm != y.score_ppm) return x.score_ppm > y.score_ppm;
    const int32_t px = channels_[group[a]].def.priority;
    const int32_t py = channels_[group[b]].def.priority;
    if (px != py) return px > py;
    return x.channel < y.channel;
  });
  std::vector<Candidate> ranked;
  ranked.reserve(order.size());
  for (const size_t k : order) ranked.push_back(std::move(d.candidates[k]));
  d.candidates = std::move(ranked);
  size_t pick = 0;
  if (r.pinned.empty() && d.candidates.size() > 1 && options_.explore_permille > 0 &&
      next_random() % 1000 < options_.explore_permille) {
    pick = 1 + static_cast<size_t>(next_random() % (d.candidates.size() - 1));
    d.explored = true;
  }
  d.channel = d.candidates[pick].channel;
  if (r.pinned.empty() && !contains(r.tried, d.channel)) maybe_canary(r, now, &d);
  const bool retry = contains(r.tried, d.channel);
  if (!r.pinned.empty()) {
    d.kind = retry ? DecisionKind::retry : DecisionKind::pinned;
  } else if (r.tried.empty()) {
    d.kind = DecisionKind::routed;
  } else {
    d.kind = retry ? DecisionKind::retry : DecisionKind::failover;
  }
  if (retry) {
    const auto n = std::count(r.tried.begin(), r.tried.end(), d.channel);  // >= 1
    const int shift = static_cast<int>(std::min<int64_t>(n - 1, 20));
    const int64_t cap = std::min(options_.backoff_max_ms, options_.backoff_base_ms << shift);
    d.delay_ms = cap > 0 ? static_cast<int64_t>(next_random() % static_cast<uint64_t>(cap + 1)) : 0;
  }
  return d;
}

void Router::maybe_canary(const RouteRequest& r, Timestamp now, Decision* d) {
  const int base = index_of(d->channel);
  KEEL_ASSERT(base >= 0);
  const ChannelControl& c = channels_[static_cast<size_t>(base)].control;
  if (c.canary_share_pct == 0) return;
  const int canary = index_of(c.canary_to);
  if (canary < 0) return;
  // The draw comes first, so the sequence of draws does not depend on the canary's state.
  const bool take = next_random() % 100 < c.canary_share_pct;
  // A payment the canary already failed fails over to the base: sending it back to the canary
  // would be a retry there that its retry budget never saw.
  if (!take || contains(r.tried, c.canary_to) ||
      reject(static_cast<size_t>(canary), r, false, now)) {
    return;
  }
  d->candidates.insert(d->candidates.begin(), score(static_cast<size_t>(canary), r.amount, now));
  d->channel = c.canary_to;
  d->canary = true;
}

void Router::count_canary(size_t channel, CallEnd end) {
  if (end == CallEnd::declined_hard) return;  // the card's answer, not the channel's
  const bool approved = end == CallEnd::approved;
  Channel& ch = channels_[channel];
  if (ch.control.canary_share_pct > 0) {
    ++ch.canary.control_calls;
    ch.canary.control_approved += approved ? 1 : 0;
    return;
  }
  if (ch.def.canary_of.empty()) return;
  const int base_index = index_of(ch.def.canary_of);
  if (base_index < 0) return;
  Channel& base = channels_[static_cast<size_t>(base_index)];
  if (base.control.canary_share_pct == 0 || base.control.canary_to != ch.def.name) return;
  CanaryCounts& n = base.canary;
  ++n.calls;
  n.approved += approved ? 1 : 0;
  if (n.calls < options_.canary_min_samples || n.control_calls == 0) return;
  // Rates in percent points x calls, compared without division.
  const uint64_t canary_pct_x = uint64_t{n.approved} * 100 * n.control_calls;
  const uint64_t control_pct_x = uint64_t{n.control_approved} * 100 * n.calls;
  const uint64_t margin_x = uint64_t{options_.canary_margin_pct} * n.calls * n.control_calls;
  if (canary_pct_x + margin_x >= control_pct_x) return;
  CanaryRollback rb;
  rb.channel = base.def.name;
  rb.canary = ch.def.name;
  rb.reason = "canary approvals " + std::to_string(n.approved * 100 / n.calls) + "% of " +
              std::to_string(n.calls) + " < " + base.def.name + " " +
              std::to_string(n.control_approved * 100 / n.control_calls) + "% of " +
              std::to_string(n.control_calls) + " - " + std::to_string(options_.canary_margin_pct) +
              " points";
  base.control.canary_to.clear();
  base.control.canary_share_pct = 0;
  base.canary = {};
  rollbacks_.push_back(std::move(rb));
}

std::vector<CanaryRollback> Router::take_rollbacks() {
  std::vector<CanaryRollback> out;
  out.swap(rollbacks_);
  return out;
}

void Router::call_started(std::string_view attempt_id, std::string_view channel, bool authorization,
                          bool retry, Timestamp now) {
  const int i = index_of(channel);
  if (i < 0) return;
  Channel& ch = channels_[static_cast<size_t>(i)];
  const auto [it, inserted] = in_flight_.try_emplace(
      std::string(attempt_id), InFlight{static_cast<size_t>(i), now, authorization});
  if (!inserted) return;
  ++ch.in_flight;
  if (ch.breaker.admits()) ch.breaker.on_start();
  if (authorization) ch.budget.add(now, retry ? Budget{0, 1} : Budget{1, 0});
}

void Router::call_ended(std::string_view attempt_id, CallEnd end, int64_t latency_ms, Timestamp now,
                        std::vector<BreakerTransition>* out) {
  const auto it = in_flight_.find(attempt_id);
  if (it == in_flight_.end()) return;
  const InFlight call = it->second;
  in_flight_.erase(it);
  Channel& ch = channels_[call.channel];
  KEEL_ASSERT(ch.in_flight > 0);
  --ch.in_flight;
  if (call.authorization) {
    ChannelCounts c;
    c.attempts = 1;
    c.approved = end == CallEnd::approved ? 1 : 0;
    c.declined_hard = end == CallEnd::declined_hard ? 1 : 0;
    c.declined_soft = end == CallEnd::declined_soft ? 1 : 0;
    c.retryable = end == CallEnd::retryable ? 1 : 0;
    c.unknown = end == CallEnd::unknown ? 1 : 0;
    c.latency[latency_bin(latency_ms)] = 1;
    ch.stats.add(now, c);
    ch.recent.add(now, c);
    count_canary(call.channel, end);
  }
  const bool failure = end == CallEnd::retryable || end == CallEnd::unknown;
  if (auto t = ch.breaker.on_end(failure, latency_ms, now)) {
    t->channel = ch.def.name;
    // Probes proved it back: the outage's failures no longer weigh on its score.
    if (t->to == BreakerState::closed) ch.recent.clear();
    out->push_back(std::move(*t));
  }
}

void Router::tick(Timestamp now, std::vector<BreakerTransition>* out) {
  std::vector<uint32_t> slow(channels_.size(), 0);
  std::vector<Timestamp> oldest(channels_.size(), now);
  const Timestamp slow_before = now - options_.breaker.slow_call_ms * kNanosPerMilli;
  for (const auto& [id, call] : in_flight_) {
    if (call.started > slow_before) continue;
    ++slow[call.channel];
    oldest[call.channel] = std::min(oldest[call.channel], call.started);
  }
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (auto t = channels_[i].breaker.evaluate(now, slow[i], oldest[i])) {
      t->channel = channels_[i].def.name;
      out->push_back(std::move(*t));
    }
  }
}

void Router::restore_breaker(std::string_view channel, BreakerState state, Timestamp since) {
  const int i = index_of(channel);
  if (i >= 0) channels_[static_cast<size_t>(i)].breaker.restore(state, since);
}

bool Router::set_control(std::string_view channel, ChannelControl control) {
  const int i = index_of(channel);
  if (i < 0) return false;
  Channel& ch = channels_[static_cast<size_t>(i)];
  if (control.canary_to != ch.control.canary_to ||
      control.canary_share_pct != ch.control.canary_share_pct) {
    ch.canary = {};
  }
  ch.control = std::move(control);
  return true;
}

std::vector<ChannelView> Router::view(Timestamp now) {
  std::vector<ChannelView> out;
  out.reserve(channels_.size());
  for (Channel& ch : channels_) {
    ChannelView v;
    v.def = ch.def;
    v.control = ch.control;
    v.breaker = ch.breaker.state();
    v.breaker_since = ch.breaker.since();
    v.in_flight = ch.in_flight;
    v.window = ch.stats.total(now);
    v.success_ppm = success_ppm(v.window);
    const Budget& b = ch.budget.total(now);
    v.first_attempts = b.firsts;
    v.retries = b.retries;
    v.drained = ch.control.draining && ch.in_flight == 0;
    v.canary_control_calls = ch.canary.control_calls;
    v.canary_control_approved = ch.canary.control_approved;
    v.canary_calls = ch.canary.calls;
    v.canary_approved = ch.canary.approved;
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace keel::routing
