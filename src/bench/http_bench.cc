#include "bench/http_bench.h"

#include <unistd.h>
#include <boost/json/parse.hpp>
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
#include "testing/keeld_process.h"

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace json = boost::json;

constexpr size_t kIdDigits = 12;
constexpr size_t kTemplatesPerConnection = 4;
constexpr std::string_view kOkResult = R"("result":"ok")";

// Writes `value` as exactly kIdDigits decimal digits at `at`.
void write_digits(char* at, uint64_t value) {
  for (size_t i = kIdDigits; i-- > 0; value /= 10) at[i] = static_cast<char>('0' + value % 10);
}

size_t count_ok(std::string_view body) {
  size_t n = 0;
  for (size_t at = body.find(kOkResult); at != std::string_view::npos;
       at = body.find(kOkResult, at + kOkResult.size())) {
    ++n;
  }
  return n;
}

std::string account_id(const std::string& run, size_t i) {
  std::string id = run;
  id += "_a";
  id += std::to_string(i);
  return id;
}

// A request body of `n` plain USD transfers between random accounts, built once; the ids are
// `prefix` + kIdDigits digits, rewritten in place before each send (with_ids), so a request
// costs the client no JSON work. One transfer is sent as a bare object, more as {"data":[...]}.
class BodyTemplate {
 public:
  BodyTemplate(const std::string& prefix, size_t n, const std::string& run, size_t accounts,
               std::mt19937_64& rng) {
    body_ = n == 1 ? "" : R"({"data":[)";
    for (size_t i = 0; i < n; ++i) {
      const size_t debit = rng() % accounts;
      const size_t credit = (debit + 1 + rng() % (accounts - 1)) % accounts;
      if (i > 0) body_ += ',';
      body_ += R"({"id":")";
      body_ += prefix;
      id_at_.push_back(body_.size());
      body_.append(kIdDigits, '0');
      body_ += R"(","debit_account_id":")";
      body_ += account_id(run, debit);
      body_ += R"(","credit_account_id":")";
      body_ += account_id(run, credit);
      body_ += R"(","amount":)";
      body_ += std::to_string(1 + rng() % 1000);
      body_ += R"(,"currency":"USD"})";
    }
    if (n > 1) body_ += "]}";
  }

  [[nodiscard]] size_t events() const { return id_at_.size(); }

  // The body with ids first, first + 1, ...
  const std::string& with_ids(uint64_t first) {
    for (size_t i = 0; i < id_at_.size(); ++i) write_digits(body_.data() + id_at_[i], first + i);
    return body_;
  }

 private:
  std::string body_;
  std::vector<size_t> id_at_;
};

struct ConnectionResult {
  uint64_t transfers_ok = 0;
  uint64_t transfers_not_ok = 0;  // answered 200 with another result
  uint64_t requests = 0;
  uint64_t rejected = 0;  // 503
  std::vector<double> latencies_ms;
  std::string error;  // a transport error or unexpected status ends the connection's run
};

// The operator's client: the admin key of a keeld this bench started (signed), or $KEEL_API_KEY.
net::HttpClientOptions client_options(const net::HttpEndpoint& endpoint) {
  net::HttpClientOptions o;
  o.endpoint = endpoint;
  o.io_timeout_ms = 60'000;
  use_bench_key(&o);
  return o;
}

// Sends the templates round-robin until `deadline`.
void run_connection(const net::HttpClientOptions& options, std::vector<BodyTemplate> templates,
                    std::latch* start, Clock::time_point deadline, ConnectionResult* out) {
  net::HttpClient client(options);
  net::HttpResponse response;
  // Connect before the clock starts.
  if (Status s = client.get("/healthz", &response); !s.is_ok()) out->error = s.message();
  start->arrive_and_wait();
  uint64_t next_id = 0;
  for (size_t t = 0; out->error.empty() && Clock::now() < deadline; ++t) {
    BodyTemplate& body = templates[t % templates.size()];
    const size_t n = body.events();
    const std::string& text = body.with_ids(next_id);
    next_id += n;
    const auto sent = Clock::now();
    if (Status s = client.post("/v1/transfers", text, &response); !s.is_ok()) {
      out->error = s.message();
      break;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
    if (response.status == 503) {
      ++out->rejected;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (response.status != 200) {
      out->error = "HTTP " + std::to_string(response.status) + ": " + response.body.substr(0, 300);
      break;
    }
    const size_t ok = count_ok(response.body);
    ++out->requests;
    out->transfers_ok += ok;
    out->transfers_not_ok += n - std::min(n, ok);
    out->latencies_ms.push_back(ms);
  }
}

// The keeld under test. A spawned one is stopped and its data directory removed when the
// Target goes, also when the run fails.
struct Target {
  net::HttpEndpoint endpoint;
  std::string run;                               // prefix of this run's account and transfer ids
  std::unique_ptr<testing::KeeldProcess> keeld;  // null when measuring an external keeld
  fs::path data_dir;                             // of the spawned keeld
  net::HttpClientOptions load;                   // the load's client (HttpBenchOptions::key)

  Target() = default;
  Target(Target&&) = default;
  ~Target() {
    keeld.reset();
    std::error_code ignored;
    if (!data_dir.empty()) fs::remove_all(data_dir, ignored);
  }
};

json::object get_status(const Target& target) {
  net::HttpClient client(client_options(target.endpoint));
  net::HttpResponse r;
  if (Status s = client.get("/v1/admin/status", &r); !s.is_ok() || r.status != 200) {
    throw std::runtime_error("GET /v1/admin/status failed: " + s.message() + r.body);
  }
  return json::parse(r.body).as_object();
}

uint64_t batches_committed(const Target& target) {
  return get_status(target).at("batches_committed").to_number<uint64_t>();
}

Row run_scenario(const Target& target, const HttpBenchOptions& o, std::string name,
                 size_t connections, size_t events_per_request) {
  std::mt19937_64 rng(o.seed + connections);
  std::vector<std::vector<BodyTemplate>> templates(connections);
  for (size_t c = 0; c < connections; ++c) {
    std::string prefix = target.run;
    prefix += events_per_request == 1 ? "s" : "b";
    prefix += std::to_string(c);
    prefix += "n";
    for (size_t t = 0; t < kTemplatesPerConnection; ++t) {
      templates[c].emplace_back(prefix, events_per_request, target.run, o.accounts, rng);
    }
  }
  const uint64_t commits_before = batches_committed(target);
  std::vector<ConnectionResult> results(connections);
  std::latch start(static_cast<std::ptrdiff_t>(connections + 1));
  std::vector<std::thread> threads;
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.seconds * 1000));
  for (size_t c = 0; c < connections; ++c) {
    threads.emplace_back(run_connection, std::cref(target.load), std::move(templates[c]), &start,
                         deadline, &results[c]);
  }
  start.arrive_and_wait();
  const auto began = Clock::now();
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - began).count();
  const uint64_t commits = batches_committed(target) - commits_before;

  Row row;
  row.scenario = std::move(name);
  uint64_t requests = 0, rejected = 0, not_ok = 0;
  std::vector<double> latencies;
  for (ConnectionResult& r : results) {
    if (!r.error.empty()) throw std::runtime_error(row.scenario + ": " + r.error);
    row.operations += r.transfers_ok;
    requests += r.requests;
    rejected += r.rejected;
    not_ok += r.transfers_not_ok;
    latencies.insert(latencies.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  row.seconds = seconds;
  row.ops_per_s = static_cast<double>(row.operations) / seconds;
  row.p50_ms = percentile_ms(latencies, 50);
  row.p99_ms = percentile_ms(latencies, 99);
  row.max_ms = percentile_ms(latencies, 100);
  row.extra = {
      {"requests", static_cast<double>(requests)},
      {"requests/s", static_cast<double>(requests) / seconds},
      {"group commits (fdatasync)", static_cast<double>(commits)},
      {"transfers per group commit",
       commits == 0 ? 0.0 : static_cast<double>(row.operations) / static_cast<double>(commits)},
      {"503 answers", static_cast<double>(rejected)},
      {"transfers answered other than ok", static_cast<double>(not_ok)},
  };
  return row;
}

void create_accounts(const Target& target, size_t n) {
  net::HttpClient client(client_options(target.endpoint));
  for (size_t i = 0; i < n;) {
    std::string body = R"({"data":[)";
    size_t in_request = 0;
    for (; i < n && in_request < 8190; ++i, ++in_request) {
      if (in_request > 0) body += ',';
      body += R"({"id":")";
      body += account_id(target.run, i);
      body += R"(","currency":"USD"})";
    }
    body += "]}";
    net::HttpResponse r;
    if (Status s = client.post("/v1/accounts", body, &r); !s.is_ok()) {
      throw std::runtime_error("creating accounts: " + s.message());
    }
    if (r.status != 200 || count_ok(r.body) != in_request) {
      throw std::runtime_error("creating accounts: HTTP " + std::to_string(r.status) + " " +
                               r.body.substr(0, 300));
    }
  }
}

std::string run_prefix(uint64_t seed) {
  const uint64_t salt = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) ^
                        (static_cast<uint64_t>(getpid()) << 32) ^ seed;
  char text[16];
  std::snprintf(text, sizeof text, "hb%08llx",
                static_cast<unsigned long long>(std::mt19937_64(salt)() & 0xFFFFFFFF));
  return text;
}

Target connect(const HttpBenchOptions& o) {
  Target t;
  t.run = run_prefix(o.seed);
  if (!o.url.empty()) {
    const auto endpoint = net::parse_http_url(o.url);
    if (!endpoint) throw std::runtime_error("--url must be http://HOST:PORT, not " + o.url);
    t.endpoint = *endpoint;
    return t;
  }
  if (o.keeld_path.empty()) throw std::runtime_error("give --keeld PATH or --url URL");
  t.data_dir = fs::absolute(fs::path(o.data_dir) / ("http-" + t.run));
  fs::remove_all(t.data_dir);
  fs::create_directories(t.data_dir.parent_path());
  testing::KeeldOptions ko;
  ko.binary = o.keeld_path;
  ko.data_dir = t.data_dir;
  ko.extra_args = {"--log-level", "warn"};
  if (Status s = testing::KeeldProcess::start(ko, &t.keeld); !s.is_ok()) {
    throw std::runtime_error("starting keeld: " + s.message());
  }
  t.endpoint = {"127.0.0.1", t.keeld->port()};
  std::fprintf(stderr, "keel-bench: keeld pid %d on %s, data %s\n", t.keeld->pid(),
               t.keeld->base_url().c_str(), t.data_dir.c_str());
  return t;
}

// Resident set size of process `pid`, from /proc/PID/statm.
double resident_mib(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  uint64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE))) / (1 << 20);
}

}  // namespace

std::vector<Row> run_http_bench(const HttpBenchOptions& o) {
  if (o.accounts < 2) throw std::runtime_error("--accounts must be at least 2");
  Target target = connect(o);
  target.load = client_options(target.endpoint);
  if (o.key == "ledger" && target.keeld && !target.load.api_key.empty()) {
    // The load's own key: a ledger key, sent as plain Bearer (no signature, no nonce).
    net::HttpClient admin(target.load);
    net::HttpResponse r;
    if (Status s = admin.post("/v1/admin/keys", R"({"role": "ledger", "label": "keel-bench"})", &r);
        !s.is_ok() || r.status != 200) {
      throw std::runtime_error("creating a ledger key: " + s.message() + r.body);
    }
    target.load.api_key = std::string(json::parse(r.body).at("key").as_string());
    target.load.sign = nullptr;
  }
  create_accounts(target, o.accounts);
  std::vector<Row> rows;
  rows.push_back(run_scenario(target, o,
                              "http, batch " + std::to_string(o.batch) + ", " +
                                  std::to_string(o.batch_connections) + " connections",
                              o.batch_connections, o.batch));
  rows.push_back(run_scenario(target, o,
                              "http, single transfer, " + std::to_string(o.single_connections) +
                                  " connections, " +
                                  (target.load.api_key.empty() ? std::string("no key")
                                   : target.load.sign          ? std::string("signed key")
                                                               : std::string("bearer key")),
                              o.single_connections, 1));
  if (target.keeld) {
    rows.back().extra.emplace_back("keeld resident MiB at the end",
                                   resident_mib(target.keeld->pid()));
    const int code = target.keeld->stop();
    if (code != 0) throw std::runtime_error("keeld exited with " + std::to_string(code));
  }
  return rows;
}

}  // namespace keel::bench
