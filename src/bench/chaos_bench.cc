#include "bench/chaos_bench.h"

#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "testing/chaos.h"

namespace keel::bench {
namespace {

namespace chaos = testing::chaos;
namespace json = boost::json;

int64_t ms_of(double seconds) { return static_cast<int64_t>(std::llround(seconds * 1000)); }

chaos::ChaosOptions chaos_options(const ChaosBenchOptions& o) {
  if (o.keeld_path.empty() || o.psp_sim_path.empty()) {
    throw std::runtime_error("give --keeld PATH and --psp-sim PATH");
  }
  chaos::ChaosOptions c;
  c.keeld_binary = o.keeld_path;
  c.sim_binary = o.psp_sim_path;
  c.data_parent = std::filesystem::absolute(o.data_dir);
  std::filesystem::create_directories(c.data_parent);
  c.lead_ms = ms_of(o.lead_seconds);
  c.fault_ms = ms_of(o.fault_seconds);
  c.flap_fault_ms = 2 * c.fault_ms;
  c.flap_ms = std::max<int64_t>(c.fault_ms / 6, 1);
  const double seconds = o.seconds > 0 ? o.seconds : o.lead_seconds + o.fault_seconds + 30;
  c.tail_ms = ms_of(seconds) - c.lead_ms - c.fault_ms;
  if (c.tail_ms < 0) throw std::runtime_error("--seconds is shorter than the lead and the fault");
  c.processing_deadline_s = o.processing_deadline_s;
  c.seed = o.seed;
  c.progress = stderr;
  return c;
}

// The scenarios to run: the baseline first, then the one asked for (or all).
std::vector<const chaos::Scenario*> chosen(const std::string& name) {
  std::vector<const chaos::Scenario*> out = {chaos::find_scenario("baseline")};
  if (name == "all") {
    for (const chaos::Scenario& s : chaos::scenarios()) {
      if (s.name != "baseline") out.push_back(&s);
    }
  } else if (const chaos::Scenario* s = chaos::find_scenario(name)) {
    if (s->name != "baseline") out.push_back(s);
  } else {
    std::string names;
    for (const chaos::Scenario& s : chaos::scenarios()) names += " " + std::string(s.name);
    throw std::runtime_error("unknown scenario " + name + "; one of:" + names + " all");
  }
  return out;
}

// A safety figure failed.
bool unsafe(const chaos::ChaosResult& r) {
  return (r.double_charges != 0 || r.orphan_charges != 0 || !r.books_equal || !r.invariants_ok ||
          r.processing_past_deadline != 0 || r.harness_errors != 0);
}

std::string seconds_or_dash(int64_t ms) {
  if (ms < 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", static_cast<double>(ms) / 1000);
  return text;
}

void print_table(const std::vector<chaos::ChaosResult>& results, double baseline_rate) {
  std::printf("\nkeel-bench chaos (a payment: create + confirm; open loop)\n");
  std::printf("%-20s %8s %7s %8s %7s %8s %9s %6s %8s %8s %6s %6s %6s %6s %5s\n", "scenario",
              "offered", "rate/s", "success", "vs base", "p50 ms", "p99 ms", "auth/p", "brk open",
              "back s", "review", "stuck", "double", "books", "inv");
  for (const chaos::ChaosResult& r : results) {
    const double vs = baseline_rate > 0 ? r.success_rate / baseline_rate : 0;
    std::printf(
        "%-20s %8lld %7.1f %7.2f%% %7.3f %8.0f %9.0f %6.3f %8s %8s %6lld %6lld %6lld %6s %5s\n",
        r.scenario.c_str(), static_cast<long long>(r.offered), r.rate_per_s, 100 * r.success_rate,
        vs, r.p50_ms, r.p99_ms, r.amplification, seconds_or_dash(r.breaker_open_after_ms).c_str(),
        seconds_or_dash(r.traffic_back_ms).c_str(), static_cast<long long>(r.in_review),
        static_cast<long long>(r.processing_past_deadline),
        static_cast<long long>(r.double_charges), r.books_equal ? "equal" : "DIFFER",
        r.invariants_ok ? "ok" : "BROKEN");
  }
  std::printf(
      "\nbrk open: s from the fault's start until GET /v1/channels first showed the primary's "
      "breaker open (polled every 100 ms);\nback s: first second after the fault in which half "
      "the successes were on the primary; stuck: processing past the deadline after settling;\n"
      "auth/p: PSP authorization attempts per offered payment (status queries are not counted: "
      "neither keeld nor keel-psp-sim exposes them).\n\n");
  for (const chaos::ChaosResult& r : results) std::printf("%s", chaos::summary(r).c_str());
  std::fflush(stdout);
}

void write_json(const std::string& path, const std::vector<chaos::ChaosResult>& results,
                double rate, double capacity, double baseline_rate) {
  json::array scenarios;
  for (const chaos::ChaosResult& r : results) {
    json::object o = json::parse(chaos::to_json(r)).as_object();
    if (baseline_rate > 0) {
      o["success_vs_baseline"] = r.success_rate / baseline_rate;
    }
    scenarios.emplace_back(std::move(o));
  }
  json::object doc{{"title", "keel-bench chaos"},
                   {"rate_per_s", rate},
                   {"capacity_per_s", capacity > 0 ? json::value(capacity) : json::value()},
                   {"scenarios", std::move(scenarios)},
                   {"notes", json::array{"status_queries: not counted; neither keeld nor "
                                         "keel-psp-sim exposes a count of them"}}};
  std::ofstream out(path);
  out << json::serialize(doc) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int run_chaos_bench(const ChaosBenchOptions& o) {
  chaos::ChaosOptions c = chaos_options(o);
  const std::vector<const chaos::Scenario*> to_run = chosen(o.scenario);
  double capacity = 0;
  c.rate_per_s = o.rate;
  if (c.rate_per_s <= 0) {
    std::fprintf(stderr, "chaos: measuring the healthy capacity (%.0f s closed loop, %zu conns)\n",
                 o.capacity_seconds, o.capacity_connections);
    capacity = chaos::measure_capacity(c, o.capacity_seconds, o.capacity_connections);
    c.rate_per_s = std::max(1.0, std::floor(capacity / 2));
    std::fprintf(stderr, "chaos: capacity %.0f payments/s; offering %.0f/s\n", capacity,
                 c.rate_per_s);
  }
  std::vector<chaos::ChaosResult> results;
  for (const chaos::Scenario* s : to_run) {
    results.push_back(chaos::run_scenario(*s, c));
    std::fprintf(stderr, "%s", chaos::summary(results.back()).c_str());
  }
  const double baseline_rate = results.front().success_rate;
  print_table(results, baseline_rate);
  if (!o.json_path.empty()) write_json(o.json_path, results, c.rate_per_s, capacity, baseline_rate);
  int unsafe_count = 0;
  for (const chaos::ChaosResult& r : results) {
    if (!unsafe(r)) continue;
    ++unsafe_count;
    std::printf("SAFETY FAILED in %s\n", r.scenario.c_str());
  }
  return unsafe_count == 0 ? 0 : 1;
}

}  // namespace keel::bench
