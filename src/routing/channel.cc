#include "routing/channel.h"

#include <algorithm>
#include <set>
#include <utility>

#include "core/assert.h"
#include "core/codec.h"
#include "core/enum_name.h"

namespace keel::routing {
namespace {

constexpr uint8_t kRegistryVersion = 1;

bool is_name(std::string_view s, size_t max_length) {
  return !s.empty() && s.size() <= max_length &&
         s.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string_view::npos;
}

}  // namespace

std::string_view flow_name(Flow f) {
  switch (f) {
    KEEL_ENUM_CASE(Flow, card_payment);
    KEEL_ENUM_CASE(Flow, topup);
    KEEL_ENUM_CASE(Flow, payout);
  }
  return "unknown";
}

std::string_view breaker_state_name(BreakerState s) {
  switch (s) {
    KEEL_ENUM_CASE(BreakerState, closed);
    KEEL_ENUM_CASE(BreakerState, open);
    KEEL_ENUM_CASE(BreakerState, half_open);
  }
  return "unknown";
}

bool is_valid_channel_name(std::string_view name) { return is_name(name, kChannelNameLengthMax); }

std::string channel_problem(const ChannelDef& d) {
  const std::string where = "channel " + d.name + ": ";
  if (!is_valid_channel_name(d.name)) {
    return "channel names are 1 to 40 of [a-z0-9_-]: \"" + d.name + "\"";
  }
  if (!is_name(d.psp, kPspNameLengthMax)) return where + "psp must be 1 to 64 of [a-z0-9_-]";
  for (size_t i = 0; i < d.currencies.size(); ++i) {
    if (!d.currencies[i].valid()) return where + "a currency is not valid";
    if (i > 0 && d.currencies[i - 1].index() >= d.currencies[i].index()) {
      return where + "currencies must be sorted and unique";
    }
  }
  if (d.flows == 0 || (d.flows & ~kAllFlows) != 0) return where + "flows must name 1 to 3 flows";
  if (d.min_amount < 1) return where + "min_amount must be at least 1";
  if (d.max_amount < d.min_amount) return where + "max_amount must be at least min_amount";
  if (d.cost_bps < 0 || d.cost_bps > kCostBasisPointsMax) {
    return where + "cost_bps must be from 0 to 10000";
  }
  if (d.cost_fixed < 0) return where + "cost_fixed must be at least 0";
  if (d.concurrency_max < 1 || d.concurrency_max > kConcurrencyMax) {
    return where + "concurrency_max must be from 1 to " + std::to_string(kConcurrencyMax);
  }
  if (d.timeout_ms < 1 || d.timeout_ms > kChannelTimeoutMsMax) {
    return where + "timeout_ms must be from 1 to " + std::to_string(kChannelTimeoutMsMax);
  }
  if (!d.canary_of.empty() && (!is_valid_channel_name(d.canary_of) || d.canary_of == d.name)) {
    return where + "canary_of must name another channel";
  }
  return {};
}

std::string channels_problem(const std::vector<ChannelDef>& defs) {
  if (defs.size() > kChannelsMax) return "at most " + std::to_string(kChannelsMax) + " channels";
  std::set<std::string_view> names;
  for (const ChannelDef& d : defs) {
    if (std::string p = channel_problem(d); !p.empty()) return p;
    if (!names.insert(d.name).second) return "channel " + d.name + " is defined twice";
  }
  for (const ChannelDef& d : defs) {
    if (d.canary_of.empty()) continue;
    const auto base = std::find_if(defs.begin(), defs.end(),
                                   [&](const ChannelDef& b) { return b.name == d.canary_of; });
    if (base == defs.end() || !base->canary_of.empty()) {
      return "channel " + d.name + ": canary_of must name a channel that is not a canary";
    }
  }
  return {};
}

bool carries(const ChannelDef& def, Flow f) { return (def.flows & flow_bit(f)) != 0; }

bool accepts_currency(const ChannelDef& def, Currency c) {
  if (def.currencies.empty()) return c.valid();
  return std::binary_search(def.currencies.begin(), def.currencies.end(), c,
                            [](Currency a, Currency b) { return a.index() < b.index(); });
}

uint32_t cost_ppm(const ChannelDef& def, int64_t amount) {
  constexpr int64_t kMillion = 1'000'000;
  const int64_t from_bps = def.cost_bps * 100;  // bps -> ppm
  // fixed / amount in ppm, saturating at 100 %: a fixed cost above the amount loses money.
  const int64_t from_fixed =
      def.cost_fixed >= amount ? kMillion : def.cost_fixed * kMillion / amount;
  return static_cast<uint32_t>(std::min(kMillion, from_bps + from_fixed));
}

void encode_channels(ByteWriter& w, const std::vector<ChannelDef>& defs) {
  w.u32(static_cast<uint32_t>(defs.size()));
  for (const ChannelDef& d : defs) {
    w.str16(d.name);
    w.str16(d.psp);
    w.u16(static_cast<uint16_t>(d.currencies.size()));
    for (const Currency c : d.currencies) write_currency(w, c);
    w.u8(d.flows);
    w.i64(d.min_amount);
    w.i64(d.max_amount);
    w.u32(static_cast<uint32_t>(d.priority));
    w.i64(d.cost_bps);
    w.i64(d.cost_fixed);
    w.u32(d.concurrency_max);
    w.i64(d.timeout_ms);
    w.str16(d.canary_of);
  }
}

bool decode_channels(ByteReader& r, std::vector<ChannelDef>* out) {
  uint32_t n = 0;
  if (!r.u32(&n) || n > kChannelsMax) return false;
  std::vector<ChannelDef> defs(n);
  for (ChannelDef& d : defs) {
    uint16_t currencies = 0;
    if (!r.str16(&d.name) || !r.str16(&d.psp) || !r.u16(&currencies)) return false;
    d.currencies.resize(currencies);
    for (Currency& c : d.currencies) {
      if (!read_currency(r, &c)) return false;
    }
    uint32_t priority = 0;
    if (!r.u8(&d.flows) || !r.i64(&d.min_amount) || !r.i64(&d.max_amount) || !r.u32(&priority) ||
        !r.i64(&d.cost_bps) || !r.i64(&d.cost_fixed) || !r.u32(&d.concurrency_max) ||
        !r.i64(&d.timeout_ms) || !r.str16(&d.canary_of)) {
      return false;
    }
    d.priority = static_cast<int32_t>(priority);
  }
  if (!channels_problem(defs).empty()) return false;
  *out = std::move(defs);
  return true;
}

void ChannelRegistry::set_channels(std::vector<ChannelDef> defs) {
  KEEL_ASSERT(channels_problem(defs).empty());
  defs_ = std::move(defs);
  std::erase_if(breakers_, [this](const auto& entry) { return find(entry.first) == nullptr; });
  std::erase_if(controls_, [this](const auto& entry) { return find(entry.first) == nullptr; });
  for (auto& [name, c] : controls_) {  // a canary whose channel went, or is no longer its canary
    const ChannelDef* to = find(c.canary_to);
    if (!c.canary_to.empty() && (to == nullptr || to->canary_of != name)) {
      c.canary_to.clear();
      c.canary_share_pct = 0;
    }
  }
  std::erase_if(controls_, [](const auto& entry) { return entry.second == ChannelControl{}; });
}

void ChannelRegistry::set_control(std::string_view channel, ChannelControl control) {
  KEEL_ASSERT(find(channel) != nullptr);
  KEEL_ASSERT(control.canary_share_pct <= 100 &&
              control.canary_to.empty() == (control.canary_share_pct == 0));
  if (control == ChannelControl{}) {
    if (const auto it = controls_.find(channel); it != controls_.end()) controls_.erase(it);
    return;
  }
  controls_.insert_or_assign(std::string(channel), std::move(control));
}

ChannelControl ChannelRegistry::control(std::string_view channel) const {
  const auto it = controls_.find(channel);
  return it == controls_.end() ? ChannelControl{} : it->second;
}

bool ChannelRegistry::record(const BreakerTransition& t) {
  if (find(t.channel) == nullptr || t.from == t.to || t.reason.size() > kBreakerReasonLengthMax) {
    return false;
  }
  BreakerRecord& b = breakers_[t.channel];
  if (b.state != t.from) {
    if (b == BreakerRecord{}) breakers_.erase(t.channel);
    return false;
  }
  b.state = t.to;
  b.since = t.at;
  b.reason = t.reason;
  if (t.to == BreakerState::open) ++b.opened;
  return true;
}

const ChannelDef* ChannelRegistry::find(std::string_view name) const {
  for (const ChannelDef& d : defs_) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

const ChannelRegistry::BreakerRecord* ChannelRegistry::breaker(std::string_view name) const {
  const auto it = breakers_.find(name);
  return it == breakers_.end() ? nullptr : &it->second;
}

void ChannelRegistry::encode(std::string* out) const {
  ByteWriter w(out);
  w.u8(kRegistryVersion);
  encode_channels(w, defs_);
  w.u32(static_cast<uint32_t>(breakers_.size()));
  for (const auto& [name, b] : breakers_) {
    w.str16(name);
    w.u8(static_cast<uint8_t>(b.state));
    w.i64(b.since);
    w.str16(b.reason);
    w.u64(b.opened);
  }
  w.u32(static_cast<uint32_t>(controls_.size()));
  for (const auto& [name, c] : controls_) {
    w.str16(name);
    write_bool(w, c.paused);
    write_bool(w, c.draining);
    w.str16(c.canary_to);
    w.u32(c.canary_share_pct);
  }
}

bool ChannelRegistry::decode(std::string_view bytes, ChannelRegistry* out) {
  ByteReader r(bytes);
  ChannelRegistry reg;
  uint8_t version = 0;
  uint32_t n = 0;
  if (!r.u8(&version) || version != kRegistryVersion || !decode_channels(r, &reg.defs_) ||
      !r.u32(&n) || n > kChannelsMax) {
    return false;
  }
  for (uint32_t i = 0; i < n; ++i) {
    std::string name;
    BreakerRecord b;
    if (!r.str16(&name) || !read_enum(r, kBreakerStateLast, &b.state) || !r.i64(&b.since) ||
        !r.str16(&b.reason) || !r.u64(&b.opened) || b.reason.size() > kBreakerReasonLengthMax ||
        reg.find(name) == nullptr || !reg.breakers_.emplace(std::move(name), std::move(b)).second) {
      return false;
    }
  }
  if (!r.u32(&n) || n > kChannelsMax) return false;
  for (uint32_t i = 0; i < n; ++i) {
    std::string name;
    ChannelControl c;
    if (!r.str16(&name) || !read_bool(r, &c.paused) || !read_bool(r, &c.draining) ||
        !r.str16(&c.canary_to) || !r.u32(&c.canary_share_pct) || c.canary_share_pct > 100 ||
        c.canary_to.empty() != (c.canary_share_pct == 0) || reg.find(name) == nullptr ||
        c == ChannelControl{}) {
      return false;
    }
    if (!c.canary_to.empty()) {
      const ChannelDef* to = reg.find(c.canary_to);
      if (to == nullptr || to->canary_of != name) return false;
    }
    if (!reg.controls_.emplace(std::move(name), std::move(c)).second) return false;
  }
  if (!r.at_end()) return false;
  *out = std::move(reg);
  return true;
}

}  // namespace keel::routing
