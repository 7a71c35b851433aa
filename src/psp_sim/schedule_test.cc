#include "psp_sim/schedule.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

FaultSchedule parse_ok(std::string_view text) {
  FaultSchedule s;
  const std::string err = parse_schedule(json::parse(text), &s);
  EXPECT_EQ(err, "") << text;
  return s;
}

TEST(Schedule, ParsesOutageFlappingAndLatencyStep) {
  // An outage from 10 s to 70 s: refused connections, then healthy again for good.
  const FaultSchedule outage = parse_ok(R"({"phases": [
      {"at_ms": 0, "faults": {}},
      {"at_ms": 10000, "faults": {"error_5xx_rate": 0.5}, "accepting": false},
      {"at_ms": 70000, "faults": {}}]})");
  ASSERT_EQ(outage.phases.size(), 3u);
  EXPECT_EQ(outage.repeat_ms, 0);
  EXPECT_TRUE(outage.phases[0].accepting);
  EXPECT_FALSE(outage.phases[1].accepting);
  EXPECT_EQ(outage.phases[1].faults.error_5xx_rate, 0.5);
  EXPECT_EQ(outage.phases[2].faults, FaultConfig{});

  // Flapping: 10 s up, 10 s down, forever. "faults" may be left out (no fault).
  const FaultSchedule flapping = parse_ok(R"({"phases": [{"at_ms": 0},
      {"at_ms": 10000, "accepting": false}], "repeat_ms": 20000})");
  EXPECT_EQ(flapping.repeat_ms, 20'000);
  EXPECT_EQ(flapping.phases[0].faults, FaultConfig{});

  // A latency step: every answer 5 s late from 1 s on.
  const FaultSchedule step = parse_ok(R"({"phases": [{"at_ms": 0},
      {"at_ms": 1000, "faults": {"latency_ms": {"min": 5000, "max": 5000}}}]})");
  EXPECT_EQ(step.phases[1].faults.latency_ms, (RangeMs{5000, 5000}));
}

TEST(Schedule, RoundTrips) {
  const FaultSchedule s = parse_ok(R"({"phases": [{"at_ms": 0, "faults": {"refuse_rate": 1}},
      {"at_ms": 5, "accepting": false}, {"at_ms": 86400000}], "repeat_ms": 0})");
  FaultSchedule back;
  ASSERT_EQ(parse_schedule(schedule_to_json(s), &back), "");
  EXPECT_EQ(back, s);
}

TEST(Schedule, PhasesUpToTheLimit) {
  json::array phases;
  for (size_t i = 0; i < kSchedulePhasesMax; ++i) {
    phases.emplace_back(json::object{{"at_ms", static_cast<int64_t>(i) * 10}});
  }
  FaultSchedule s;
  ASSERT_EQ(parse_schedule(json::object{{"phases", phases}}, &s), "");
  EXPECT_EQ(s.phases.size(), kSchedulePhasesMax);
  phases.emplace_back(json::object{{"at_ms", 100'000}});
  EXPECT_NE(parse_schedule(json::object{{"phases", phases}}, &s).find("1 to 64 phases"),
            std::string::npos);
  EXPECT_EQ(s.phases.size(), kSchedulePhasesMax);  // unchanged by the failure
}

// Each invalid schedule fails with a message naming the place, and leaves *out unchanged.
TEST(Schedule, Errors) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {R"([])", "schedule: expected"},
      {R"({})", "phases: required"},
      {R"({"phases": [{"at_ms": 0}], "colour": 1})", "schedule: unknown key colour"},
      {R"({"phases": []})", "phases: expected an array"},
      {R"({"phases": {"at_ms": 0}})", "phases: expected an array"},
      {R"({"phases": [1]})", "phases[0]: expected"},
      {R"({"phases": [{"faults": {}}]})", "phases[0].at_ms: required"},
      {R"({"phases": [{"at_ms": 5}]})", "phases[0].at_ms: the first phase starts at 0"},
      {R"({"phases": [{"at_ms": 0}, {"at_ms": 0}]})", "phases[1].at_ms: must be above"},
      {R"({"phases": [{"at_ms": 0}, {"at_ms": 9}, {"at_ms": 3}]})", "phases[2].at_ms"},
      {R"({"phases": [{"at_ms": -1}]})", "phases[0].at_ms: expected an integer within"},
      {R"({"phases": [{"at_ms": 0}, {"at_ms": 86400001}]})", "phases[1].at_ms"},
      {R"({"phases": [{"at_ms": 0}, {"at_ms": 18446744073709551615}]})", "phases[1].at_ms"},
      {R"({"phases": [{"at_ms": 0.5}]})", "phases[0].at_ms"},
      {R"({"phases": [{"at_ms": "0"}]})", "phases[0].at_ms"},
      {R"({"phases": [{"at_ms": 0, "accepting": "no"}]})", "phases[0].accepting"},
      {R"({"phases": [{"at_ms": 0, "surprise": 1}]})", "phases[0]: unknown key surprise"},
      {R"({"phases": [{"at_ms": 0, "faults": {"refuse_rate": 2}}]})",
       "phases[0].faults: refuse_rate"},
      {R"({"phases": [{"at_ms": 0, "faults": {"latency_ms": {"min": 1, "max": 600001}}}]})",
       "phases[0].faults: latency_ms"},
      {R"({"phases": [{"at_ms": 0, "faults": []}]})", "phases[0].faults"},
      {R"({"phases": [{"at_ms": 0}, {"at_ms": 100}], "repeat_ms": 100})", "repeat_ms"},
      {R"({"phases": [{"at_ms": 0}, {"at_ms": 100}], "repeat_ms": 50})", "repeat_ms"},
      {R"({"phases": [{"at_ms": 0}], "repeat_ms": -1})", "repeat_ms"},
      {R"({"phases": [{"at_ms": 0}], "repeat_ms": 86400001})", "repeat_ms"},
      {R"({"phases": [{"at_ms": 0}], "repeat_ms": true})", "repeat_ms"},
  };
  const FaultSchedule before = parse_ok(R"({"phases": [{"at_ms": 0}], "repeat_ms": 7})");
  for (const auto& [text, expected] : cases) {
    FaultSchedule s = before;
    const std::string err = parse_schedule(json::parse(text), &s);
    EXPECT_NE(err.find(expected), std::string::npos) << text << " -> " << err;
    EXPECT_EQ(s, before) << text;
  }
}

TEST(Schedule, AcceptingFalseNeedsAListener) {
  const FaultSchedule s =
      parse_ok(R"({"phases": [{"at_ms": 0}, {"at_ms": 10, "accepting": false}]})");
  EXPECT_EQ(check_accepting(s, true), "");
  EXPECT_NE(check_accepting(s, false).find("phases[1].accepting"), std::string::npos);
  EXPECT_EQ(check_accepting(parse_ok(R"({"phases": [{"at_ms": 0}]})"), false), "");
}

TEST(Schedule, PositionWithoutRepeat) {
  const FaultSchedule s = parse_ok(R"({"phases": [{"at_ms": 0}, {"at_ms": 100}, {"at_ms": 250}]})");
  const auto at = [&](int64_t elapsed_ms) { return schedule_position(s, elapsed_ms); };
  EXPECT_EQ(at(0).phase, 0u);
  EXPECT_EQ(at(0).next_change_ms, 100);
  EXPECT_EQ(at(99).phase, 0u);
  EXPECT_EQ(at(100).phase, 1u);
  EXPECT_EQ(at(100).next_change_ms, 250);
  EXPECT_EQ(at(249).phase, 1u);
  // The last phase stays in force.
  EXPECT_EQ(at(250).phase, 2u);
  EXPECT_EQ(at(250).next_change_ms, std::nullopt);
  EXPECT_EQ(at(int64_t{1} << 50).phase, 2u);
  // A wall clock stepped back: still the first phase.
  EXPECT_EQ(at(-5).phase, 0u);
  EXPECT_EQ(at(-5).next_change_ms, 100);

  const FaultSchedule one = parse_ok(R"({"phases": [{"at_ms": 0}]})");
  EXPECT_EQ(schedule_position(one, 1'000).phase, 0u);
  EXPECT_EQ(schedule_position(one, 1'000).next_change_ms, std::nullopt);
}

TEST(Schedule, PositionWithRepeat) {
  // Flapping: up for 10 s, down for 10 s.
  const FaultSchedule s = parse_ok(R"({"phases": [{"at_ms": 0},
      {"at_ms": 10000, "accepting": false}], "repeat_ms": 20000})");
  const auto at = [&](int64_t elapsed_ms) { return schedule_position(s, elapsed_ms); };
  EXPECT_EQ(at(0).phase, 0u);
  EXPECT_EQ(at(9'999).phase, 0u);
  EXPECT_EQ(at(9'999).next_change_ms, 10'000);
  EXPECT_EQ(at(10'000).phase, 1u);
  EXPECT_EQ(at(10'000).next_change_ms, 20'000);  // the next round starts
  EXPECT_EQ(at(19'999).phase, 1u);
  EXPECT_EQ(at(20'000).phase, 0u);
  EXPECT_EQ(at(20'000).next_change_ms, 30'000);
  EXPECT_EQ(at(45'000).phase, 0u);
  EXPECT_EQ(at(55'000).phase, 1u);
  EXPECT_EQ(at(55'000).next_change_ms, 60'000);

  // A gap after the last phase: it lasts until the round ends.
  const FaultSchedule gap =
      parse_ok(R"({"phases": [{"at_ms": 0}, {"at_ms": 100}], "repeat_ms": 1000})");
  EXPECT_EQ(schedule_position(gap, 999).phase, 1u);
  EXPECT_EQ(schedule_position(gap, 999).next_change_ms, 1'000);
  EXPECT_EQ(schedule_position(gap, 1'050).phase, 0u);
  EXPECT_EQ(schedule_position(gap, 1'050).next_change_ms, 1'100);
}

}  // namespace
}  // namespace keel::psp_sim
