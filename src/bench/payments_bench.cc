#include "bench/payments_bench.h"

#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <random>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "net/http_client.h"
#include "testing/payments_stack.h"

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace json = boost::json;

constexpr int kRequestTriesMax = 100;  // per request: transport errors and 5xx
constexpr size_t kAmounts = 16;        // distinct amounts per connection, cycled

// The string value of the first `"key":"` in `body` (keel writes compact JSON); empty if none.
std::string_view first_string(std::string_view body, std::string_view key) {
  std::string needle = "\"";
  needle += key;
  needle += "\":\"";
  const size_t at = body.find(needle);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + needle.size();
  const size_t end = body.find('"', begin);
  return end == std::string_view::npos ? std::string_view() : body.substr(begin, end - begin);
}

struct ConnectionResult {
  uint64_t payments = 0;
  uint64_t succeeded = 0, failed = 0, processing = 0, in_use = 0;  // how confirms answered
  uint64_t retried = 0;  // requests sent again after a transport error or a 5xx
  std::vector<double> payment_ms, confirm_ms;
  std::string error;  // an unexpected answer ends the connection's run
};

// One client connection. Retries a request with the same Idempotency-Key until keeld answers
// other than with a 5xx.
class Client {
 public:
  // `api_key`: the merchant's (plain Bearer); empty: the bench's own (use_bench_key).
  Client(uint16_t port, const std::string& api_key, ConnectionResult* out)
      : client_(options(port, api_key)), out_(out) {}

  bool post(const std::string& target, const std::string& body, const std::string& key,
            net::HttpResponse* r) {
    const net::HttpHeaders headers = {{"Idempotency-Key", key}};
    for (int attempt = 0; attempt < kRequestTriesMax; ++attempt) {
      if (attempt > 0) {
        ++out_->retried;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(attempt, 20)));
      }
      if (client_.request("POST", target, body, headers, r).is_ok() && r->status < 500) {
        return true;
      }
    }
    out_->error =
        "POST " + target + ": no answer after " + std::to_string(kRequestTriesMax) + " tries";
    return false;
  }

  bool warm_up() {
    net::HttpResponse r;
    return client_.get("/healthz", &r).is_ok();
  }

 private:
  static net::HttpClientOptions options(uint16_t port, const std::string& api_key) {
    net::HttpClientOptions o;
    o.endpoint = {"127.0.0.1", port};
    o.io_timeout_ms = 60'000;
    use_bench_key(&o);
    if (!api_key.empty()) {
      o.api_key = api_key;
      o.sign = nullptr;
    }
    return o;
  }

  net::HttpClient client_;
  ConnectionResult* out_;
};

// Creates and confirms one payment; false (with out->error) on an unexpected answer.
bool pay(Client& client, const std::string& create_body, const std::string& key_prefix,
         ConnectionResult* out) {
  const auto began = Clock::now();
  net::HttpResponse r;
  if (!client.post("/v1/payments", create_body, key_prefix + "c", &r)) return false;
  const std::string id(first_string(r.body, "id"));
  if (r.status != 200 || id.empty()) {
    out->error = "create: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
    return false;
  }
  const auto confirm_began = Clock::now();
  if (!client.post("/v1/payments/" + id + "/confirm", "{}", key_prefix + "f", &r)) return false;
  const auto done = Clock::now();
  const std::string_view status = first_string(r.body, "status");
  if (r.status == 409 && first_string(r.body, "code") == "idempotency_key_in_use") {
    ++out->in_use;  // an earlier try reached keeld, which has the confirm
  } else if (r.status != 200) {
    out->error = "confirm: HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
    return false;
  } else if (status == "succeeded") {
    ++out->succeeded;
  } else if (status == "failed") {
    ++out->failed;
  } else if (status == "processing") {
    ++out->processing;
  } else {
    out->error = "confirm: unexpected status in " + r.body.substr(0, 300);
    return false;
  }
  ++out->payments;
  out->payment_ms.push_back(std::chrono::duration<double, std::milli>(done - began).count());
  out->confirm_ms.push_back(
      std::chrono::duration<double, std::milli>(done - confirm_began).count());
  return true;
}

void run_connection(uint16_t port, const std::string& merchant, const std::string& merchant_key,
                    const std::string& prefix, uint64_t seed, std::latch* start,
                    Clock::time_point deadline, ConnectionResult* out) {
  Client client(port, merchant_key, out);
  std::mt19937_64 rng(seed);
  std::vector<std::string> bodies;
  for (size_t i = 0; i < kAmounts; ++i) {
    bodies.push_back(R"({"amount":)" + std::to_string(100 + rng() % 99'900) +
                     R"(,"currency":"USD","merchant":")" + merchant +
                     R"(","payment_method":"tok_visa"})");
  }
  if (!client.warm_up()) out->error = "cannot reach keeld";  // connect before the clock starts
  start->arrive_and_wait();
  for (uint64_t n = 0; out->error.empty() && Clock::now() < deadline; ++n) {
    if (!pay(client, bodies[n % kAmounts], prefix + std::to_string(n) + "-", out)) break;
  }
}

std::string run_prefix(uint64_t seed) {
  const uint64_t salt = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                        (static_cast<uint64_t>(getpid()) << 32) ^ seed;
  char text[16];
  std::snprintf(text, sizeof text, "pb%08llx",
                static_cast<unsigned long long>(std::mt19937_64(salt)() & 0xFFFFFFFF));
  return text;
}

json::object get_json(uint16_t port, const std::string& target) {
  net::HttpClientOptions o;
  o.endpoint = {"127.0.0.1", port};
  o.io_timeout_ms = 120'000;
  use_bench_key(&o);
  net::HttpClient client(o);
  net::HttpResponse r;
  if (Status s = client.get(target, &r); !s.is_ok() || r.status != 200) {
    throw std::runtime_error("GET " + target + " failed: " + s.message() + r.body);
  }
  return json::parse(r.body).as_object();
}

double resident_mib(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  uint64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE))) / (1 << 20);
}

std::unique_ptr<testing::PaymentsStack> start_stack(const PaymentsBenchOptions& o,
                                                    const fs::path& data_dir) {
  testing::PaymentsStackOptions so;
  so.seed = o.seed;
  so.keeld_binary = o.keeld_path;
  so.sim_binary = o.psp_sim_path;
  so.data_dir = data_dir;
  so.sim_toml_extra = testing::all_faults_toml("cardco", o.faults, 0);
  so.payments_toml_extra =
      "processing_deadline_s = 10\nsettle_wait_ms = " + std::to_string(o.settle_wait_ms) + "\n";
  so.resolve_initial_ms = 50;
  so.resolve_max_ms = 500;
  so.not_found_grace_ms = 2'000;
  so.total_timeout_ms = 500;  // a black hole ends as unknown after this
  so.channel_toml_extra = "connections_max = 64\nconnect_timeout_ms = 500\n";
  if (o.routing) {
    so.routing_toml = "seed = " + std::to_string(o.seed) + "\n";
    so.channel_toml["bankco"] = "flows = [\"topup\", \"payout\"]\n";
  }
  if (o.history_in_memory) so.keeld_toml_extra = "[engine]\nhistory = \"memory\"\n";
  // One merchant's key carries the whole load: its per-key limit would be the measure.
  if (o.keys) so.keeld_toml_extra += "[auth.rate_limits.merchant]\nper_second = 0\n";
  so.keeld_args = {"--log-level", "warn"};
  so.sim_args = {"--log-level", "warn"};
  std::unique_ptr<testing::PaymentsStack> stack;
  if (Status s = testing::PaymentsStack::start(so, &stack); !s.is_ok()) {
    throw std::runtime_error("starting keeld and keel-psp-sim: " + s.message());
  }
  std::fprintf(stderr, "keel-bench: keeld pid %d on %s, keel-psp-sim pid %d on %s, data %s\n",
               stack->keeld().pid(), stack->keeld().base_url().c_str(), stack->sim().pid(),
               stack->sim().base_url().c_str(), data_dir.c_str());
  return stack;
}

// Runs the connections for o.seconds; the rows of the report.
std::vector<Row> measure(testing::PaymentsStack& stack, const PaymentsBenchOptions& o,
                         const std::string& run) {
  const std::string merchant = stack.create_merchant();
  if (merchant.empty()) throw std::runtime_error("cannot create a merchant");
  // The load pays as a merchant's checkout does: with the merchant's own key (plain Bearer, the
  // tenant checks included). A keeld from before keys makes none: no key then.
  const testing::JsonResponse key =
      !o.keys ? testing::JsonResponse{}
              : stack.post("/v1/admin/keys", R"({"role": "merchant", "merchant": ")" + merchant +
                                                 R"(", "label": "keel-bench"})");
  const std::string merchant_key =
      key.status == 200 && key.body.is_object() && key.body.as_object().contains("key")
          ? std::string(key.body.at("key").as_string())
          : std::string();
  const uint16_t port = stack.keeld().port();
  const uint64_t commits_before =
      get_json(port, "/v1/admin/status").at("batches_committed").to_number<uint64_t>();
  std::vector<ConnectionResult> results(o.connections);
  std::latch start(static_cast<std::ptrdiff_t>(o.connections + 1));
  std::vector<std::thread> threads;
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.seconds * 1000));
  for (size_t c = 0; c < o.connections; ++c) {
    threads.emplace_back(run_connection, port, merchant, merchant_key,
                         run + "-" + std::to_string(c) + "-", o.seed * 1'000'003 + c, &start,
                         deadline, &results[c]);
  }
  start.arrive_and_wait();
  const auto began = Clock::now();
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
  const uint64_t commits =
      get_json(port, "/v1/admin/status").at("batches_committed").to_number<uint64_t>() -
      commits_before;

  ConnectionResult all;
  for (ConnectionResult& r : results) {
    if (!r.error.empty()) throw std::runtime_error(r.error);
    all.payments += r.payments;
    all.succeeded += r.succeeded;
    all.failed += r.failed;
    all.processing += r.processing;
    all.in_use += r.in_use;
    all.retried += r.retried;
    all.payment_ms.insert(all.payment_ms.end(), r.payment_ms.begin(), r.payment_ms.end());
    all.confirm_ms.insert(all.confirm_ms.end(), r.confirm_ms.begin(), r.confirm_ms.end());
  }
  const std::string setup =
      std::to_string(o.connections) + " conns" +
      (o.faults > 0 ? ", faults " + std::to_string(o.faults).substr(0, 4) : std::string());
  std::vector<Row> rows(2);
  rows[0].scenario = "payment, " + setup;
  rows[1].scenario = "confirm, " + setup;
  for (int i = 0; i < 2; ++i) {
    std::vector<double>& samples = i == 0 ? all.payment_ms : all.confirm_ms;
    rows[i].operations = all.payments;
    rows[i].seconds = seconds;
    rows[i].ops_per_s = static_cast<double>(all.payments) / seconds;
    rows[i].p50_ms = percentile_ms(samples, 50);
    rows[i].p99_ms = percentile_ms(samples, 99);
    rows[i].max_ms = percentile_ms(samples, 100);
  }
  rows[0].extra = {
      {"confirms answered succeeded", static_cast<double>(all.succeeded)},
      {"confirms answered failed", static_cast<double>(all.failed)},
      {"confirms answered processing", static_cast<double>(all.processing)},
      {"confirms answered 409 in use", static_cast<double>(all.in_use)},
      {"requests retried (transport error, 5xx)", static_cast<double>(all.retried)},
      {"group commits (fdatasync)", static_cast<double>(commits)},
      {"settle_wait_ms", static_cast<double>(o.settle_wait_ms)},
  };
  return rows;
}

// A figure of keeld's status, when this keeld reports it (an older one, benched for a
// comparison, may not).
void add_if_reported(const json::object& status, std::string_view field, std::string label,
                     Row* row) {
  if (const json::value* v = status.if_contains(field)) {
    row->extra.emplace_back(std::move(label), v->to_number<double>());
  }
}

// A snapshot of the state the run left (how long the request took, the file's size), then a
// restart of keeld on the same data: stop and start until it listens again (recovery from that
// snapshot, the history store opened, open attempts handed to the resolver).
void snapshot_and_restart(testing::PaymentsStack& stack, Row* row) {
  const auto began = Clock::now();
  const testing::JsonResponse snap = stack.post("/v1/admin/snapshot", "");
  if (snap.status != 200) throw std::runtime_error("snapshot: " + snap.text);
  const double snapshot_s = std::chrono::duration<double>(Clock::now() - began).count();
  const json::object after = get_json(stack.keeld().port(), "/v1/admin/status");
  uint64_t snapshot_bytes = 0;
  for (const auto& f : fs::directory_iterator(stack.data_dir())) {
    if (f.path().extension() == ".snap") snapshot_bytes = std::max(snapshot_bytes, f.file_size());
  }
  const auto stopped = Clock::now();
  if (Status s = stack.restart_keeld(/*kill9=*/false); !s.is_ok()) {
    throw std::runtime_error("restart: " + s.message());
  }
  const double restart_s = std::chrono::duration<double>(Clock::now() - stopped).count();
  add_if_reported(after, "snapshot_encode_longest_ms", "snapshot encoding on the writer ms", row);
  row->extra.emplace_back("snapshot request seconds", snapshot_s);
  row->extra.emplace_back("snapshot MiB", static_cast<double>(snapshot_bytes) / (1 << 20));
  row->extra.emplace_back("restart seconds (stop, start until listening)", restart_s);
  row->extra.emplace_back("keeld resident MiB after the restart",
                          resident_mib(stack.keeld().pid()));
}

}  // namespace

std::vector<Row> run_payments_bench(const PaymentsBenchOptions& o) {
  if (o.keeld_path.empty() || o.psp_sim_path.empty()) {
    throw std::runtime_error("give --keeld PATH and --psp-sim PATH");
  }
  const std::string run = run_prefix(o.seed);
  const fs::path data_dir = fs::absolute(fs::path(o.data_dir) / ("payments-" + run));
  fs::remove_all(data_dir);
  fs::create_directories(data_dir.parent_path());
  struct RemoveAtEnd {
    fs::path dir;
    ~RemoveAtEnd() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } remove_at_end{data_dir};
  std::unique_ptr<testing::PaymentsStack> stack = start_stack(o, data_dir);
  std::vector<Row> rows = measure(*stack, o, run);
  // Before the full status: it builds the whole canonical state on the writer (the state hash),
  // whose peak the allocator keeps.
  const double resident = resident_mib(stack->keeld().pid());
  // The writer's longest pause of the load (before the full status, itself one long pause).
  add_if_reported(get_json(stack->keeld().port(), "/v1/admin/status"), "writer_longest_pause_ms",
                  "writer longest pause ms (load, automatic snapshots included)", &rows[0]);
  const json::object status = get_json(stack->keeld().port(), "/v1/admin/status?full=true");
  const bool invariants_ok = status.at("invariants_ok").as_bool();
  rows[0].extra.emplace_back("invariants ok (1 yes, 0 no)", invariants_ok ? 1.0 : 0.0);
  rows[0].extra.emplace_back("keeld resident MiB at the end of the load", resident);
  rows[0].extra.emplace_back("keeld resident MiB after a full status",
                             resident_mib(stack->keeld().pid()));
  if (o.snapshot_restart) snapshot_and_restart(*stack, &rows[0]);
  const int code = stack->keeld().stop();
  if (code != 0) throw std::runtime_error("keeld exited with " + std::to_string(code));
  if (!invariants_ok)
    throw std::runtime_error("keeld's invariants do not hold: " + json::serialize(status));
  return rows;
}

}  // namespace keel::bench
