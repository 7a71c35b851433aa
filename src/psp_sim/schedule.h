#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "psp_sim/faults.h"

namespace keel::psp_sim {

inline constexpr size_t kSchedulePhasesMax = 64;
inline constexpr int64_t kScheduleMsMax = 86'400'000;  // 24 h, for at_ms and repeat_ms

// From `at_ms` after the schedule was set, the PSP's faults are `faults` (the whole config: a
// phase replaces the faults, it does not merge into them) and its own listener accepts
// connections or not.
struct SchedulePhase {
  int64_t at_ms = 0;  // 0..kScheduleMsMax
  FaultConfig faults;
  bool accepting = true;
  friend bool operator==(const SchedulePhase&, const SchedulePhase&) = default;
};

// A PSP's faults over time (docs/psp_sim.md, "Fault schedules"). Valid when: 1 to
// kSchedulePhasesMax phases, the first at 0 ms, at_ms strictly increasing; repeat_ms is 0 (the
// last phase stays in force) or within (last at_ms, kScheduleMsMax] (the whole schedule starts
// over every repeat_ms).
struct FaultSchedule {
  std::vector<SchedulePhase> phases;
  int64_t repeat_ms = 0;
  friend bool operator==(const FaultSchedule&, const FaultSchedule&) = default;
};

// Parses a schedule from JSON:
//   {"phases": [{"at_ms": 0, "faults": {...}},
//               {"at_ms": 10000, "faults": {"refuse_rate": 1}, "accepting": false}],
//    "repeat_ms": 20000}
// "faults" (parse_faults(), default: no fault), "accepting" (default true) and "repeat_ms"
// (default 0) are optional. Anything else, or a schedule that is not valid (above), is an
// error naming the place ("phases[1].faults: refuse_rate: a rate must be within [0, 1]").
// Returns the error message, or "" and *out (left unchanged on error). Pure; any thread.
[[nodiscard]] std::string parse_schedule(const boost::json::value& v, FaultSchedule* out);
// "" if no phase has `accepting` false or the PSP has a listener of its own to take down;
// otherwise the error naming the first phase that has ("phases[1].accepting: ..."). Pure.
[[nodiscard]] std::string check_accepting(const FaultSchedule& s, bool has_own_listener);
// The shape parse_schedule() reads, every key present.
[[nodiscard]] boost::json::object schedule_to_json(const FaultSchedule& s);

// Where a schedule stands `elapsed_ms` after it was set.
struct SchedulePosition {
  size_t phase = 0;  // index into phases: the phase in force
  // The elapsed time at which the next phase takes over; nullopt if this one stays for good.
  std::optional<int64_t> next_change_ms;
};

// REQUIRES: `s` is valid (parse_schedule() accepted it). A negative `elapsed_ms` (a wall clock
// stepped back) counts as 0. Pure; any thread.
[[nodiscard]] SchedulePosition schedule_position(const FaultSchedule& s, int64_t elapsed_ms);

}  // namespace keel::psp_sim
