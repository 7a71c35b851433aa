#include "psp_sim/schedule.h"

#include <algorithm>
#include <boost/json.hpp>

#include "core/assert.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

std::string parse_ms(const json::value& v, const std::string& where, int64_t* out) {
  if (!v.is_int64() || v.get_int64() < 0 || v.get_int64() > kScheduleMsMax) {
    return where + ": expected an integer within 0.." + std::to_string(kScheduleMsMax);
  }
  *out = v.get_int64();
  return {};
}

std::string parse_phase(const json::value& v, const std::string& where, SchedulePhase* out) {
  if (!v.is_object()) return where + ": expected {at_ms, faults, accepting}";
  SchedulePhase phase;
  bool has_at = false;
  for (const auto& [key, value] : v.get_object()) {
    std::string err;
    if (key == "at_ms") {
      has_at = true;
      err = parse_ms(value, where + ".at_ms", &phase.at_ms);
    } else if (key == "faults") {
      err = parse_faults(value, &phase.faults);
      if (!err.empty()) err = where + ".faults: " + err;
    } else if (key == "accepting") {
      if (value.is_bool()) {
        phase.accepting = value.get_bool();
      } else {
        err = where + ".accepting: expected true or false";
      }
    } else {
      err = where + ": unknown key " + std::string(key);
    }
    if (!err.empty()) return err;
  }
  if (!has_at) return where + ".at_ms: required";
  *out = std::move(phase);
  return {};
}

std::string parse_phases(const json::value& v, std::vector<SchedulePhase>* out) {
  const json::array* a = v.if_array();
  if (a == nullptr || a->empty() || a->size() > kSchedulePhasesMax) {
    return "phases: expected an array of 1 to " + std::to_string(kSchedulePhasesMax) + " phases";
  }
  std::vector<SchedulePhase> phases;
  for (size_t i = 0; i < a->size(); ++i) {
    const std::string where = "phases[" + std::to_string(i) + "]";
    SchedulePhase phase;
    if (std::string err = parse_phase((*a)[i], where, &phase); !err.empty()) return err;
    if (i == 0 && phase.at_ms != 0) return where + ".at_ms: the first phase starts at 0";
    if (i > 0 && phase.at_ms <= phases.back().at_ms) {
      return where + ".at_ms: must be above the previous phase's (" +
             std::to_string(phases.back().at_ms) + ")";
    }
    phases.push_back(std::move(phase));
  }
  *out = std::move(phases);
  return {};
}

}  // namespace

std::string parse_schedule(const json::value& v, FaultSchedule* out) {
  if (!v.is_object()) return "schedule: expected {phases, repeat_ms}";
  FaultSchedule s;
  bool has_phases = false;
  for (const auto& [key, value] : v.get_object()) {
    std::string err;
    if (key == "phases") {
      has_phases = true;
      err = parse_phases(value, &s.phases);
    } else if (key == "repeat_ms") {
      err = parse_ms(value, "repeat_ms", &s.repeat_ms);
    } else {
      err = "schedule: unknown key " + std::string(key);
    }
    if (!err.empty()) return err;
  }
  if (!has_phases) return "phases: required";
  if (s.repeat_ms != 0 && s.repeat_ms <= s.phases.back().at_ms) {
    return "repeat_ms: must be 0 (no repeat) or above the last phase's at_ms (" +
           std::to_string(s.phases.back().at_ms) + ")";
  }
  *out = std::move(s);
  return {};
}

std::string check_accepting(const FaultSchedule& s, bool has_own_listener) {
  if (has_own_listener) return {};
  for (size_t i = 0; i < s.phases.size(); ++i) {
    if (!s.phases[i].accepting) {
      return "phases[" + std::to_string(i) +
             "].accepting: false needs a listener of the PSP's own (listen in its config)";
    }
  }
  return {};
}

json::object schedule_to_json(const FaultSchedule& s) {
  json::array phases;
  for (const SchedulePhase& p : s.phases) {
    phases.emplace_back(json::object{
        {"at_ms", p.at_ms}, {"faults", faults_to_json(p.faults)}, {"accepting", p.accepting}});
  }
  return json::object{{"phases", std::move(phases)}, {"repeat_ms", s.repeat_ms}};
}

SchedulePosition schedule_position(const FaultSchedule& s, int64_t elapsed_ms) {
  KEEL_ASSERT(!s.phases.empty() && s.phases.front().at_ms == 0);
  KEEL_ASSERT(s.repeat_ms == 0 || s.repeat_ms > s.phases.back().at_ms);
  elapsed_ms = std::max<int64_t>(elapsed_ms, 0);
  // The start of the current round and the time into it.
  const int64_t round_start_ms = s.repeat_ms > 0 ? elapsed_ms - elapsed_ms % s.repeat_ms : 0;
  const int64_t into_ms = elapsed_ms - round_start_ms;
  // The last phase that started at or before `into_ms` (the first starts at 0).
  const auto next = std::upper_bound(s.phases.begin(), s.phases.end(), into_ms,
                                     [](int64_t t, const SchedulePhase& p) { return t < p.at_ms; });
  SchedulePosition position;
  position.phase = static_cast<size_t>(next - s.phases.begin()) - 1;
  if (next != s.phases.end()) {
    position.next_change_ms = round_start_ms + next->at_ms;
  } else if (s.repeat_ms > 0) {
    position.next_change_ms = round_start_ms + s.repeat_ms;
  }
  return position;
}

}  // namespace keel::psp_sim
