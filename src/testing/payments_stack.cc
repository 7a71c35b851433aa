#include "testing/payments_stack.h"

#include "testing/test_pki.h"

#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#include "connectors/webhook_signature.h"

namespace keel::testing {

std::string str(const boost::json::value& v, std::string_view key) {
  const boost::json::value* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (f == nullptr || !f->is_string()) return {};
  return std::string(f->get_string());
}

int64_t num(const boost::json::value& v, std::string_view key) {
  const boost::json::value* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (f == nullptr || !f->is_int64()) return -1;
  return f->get_int64();
}
namespace json = boost::json;

namespace {

SimPspFees fees_of(const PaymentsStackOptions& o, const std::string& psp) {
  if (const auto f = o.psp_fees.find(psp); f != o.psp_fees.end()) return f->second;
  if (psp == "cardco") return o.cardco_fees;
  if (psp == "bankco") return o.bankco_fees;
  return {};
}

// `psp_ports`: each PSP's own listener (empty without own_listeners).
std::string sim_config(uint16_t keeld_port, const PaymentsStackOptions& o,
                       const std::map<std::string, uint16_t, std::less<>>& psp_ports) {
  std::string currencies;
  for (const std::string& c : o.currencies) {
    currencies += (currencies.empty() ? "\"" : ", \"") + c + "\"";
  }
  std::string s;
  for (const std::string& name : o.psps) {
    const SimPspFees fees = fees_of(o, name);
    s += "[psps." + name + "]\n";
    s += "api_key = \"sk_" + name + "\"\n";
    s += "webhook_url = \"http://127.0.0.1:" + std::to_string(keeld_port) + "/v1/webhooks/" + name +
         "\"\n";
    s += "webhook_secret = \"whsec_" + name + "\"\n";
    s += "fee_fixed = " + std::to_string(fees.fixed) + "\nfee_bps = " + std::to_string(fees.bps) +
         "\n";
    s += "currencies = [" + currencies + "]\n";
    if (const auto port = psp_ports.find(name); port != psp_ports.end()) {
      s += "listen = \"127.0.0.1:" + std::to_string(port->second) + "\"\n";
    }
    s += "\n";
  }
  return s + o.sim_toml_extra + "\n";
}

// keeld's config: a channel per PSP at the shared port `sim_port`, or at the PSP's own port
// (https with `psp_ca` as the channel's ca_file when psp_tls).
std::string keeld_config(const PaymentsStackOptions& o, uint16_t sim_port,
                         const std::map<std::string, uint16_t, std::less<>>& psp_ports,
                         const std::filesystem::path& psp_ca) {
  std::string k = "[payments]\ndefault_channel = \"" + o.psps.front() + "\"\n";
  k += "resolve_initial_ms = " + std::to_string(o.resolve_initial_ms) + "\n";
  k += "resolve_max_ms = " + std::to_string(o.resolve_max_ms) + "\n";
  k += "not_found_grace_ms = " + std::to_string(o.not_found_grace_ms) + "\n";
  k += o.payments_toml_extra + "\n";
  for (const std::string& name : o.psps) {
    const auto own = psp_ports.find(name);
    const uint16_t port = own == psp_ports.end() ? sim_port : own->second;
    const auto key_file = o.api_key_files.find(name);
    const std::string key = key_file == o.api_key_files.end()
                                ? "api_key = \"sk_" + name + "\""
                                : "api_key_file = \"" + key_file->second.string() + "\"";
    k += "[channels." + name + "]\nurl = \"" + (o.psp_tls ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(port) + "\"\n" + key + "\nwebhook_secret = \"whsec_" +
         name + "\"\ntotal_timeout_ms = " + std::to_string(o.total_timeout_ms) + "\n" +
         o.channel_toml_extra + "\n";
    if (o.psp_tls) k += "ca_file = \"" + psp_ca.string() + "\"\n";
    if (const auto extra = o.channel_toml.find(name); extra != o.channel_toml.end()) {
      k += extra->second + "\n";
    }
  }
  if (o.routing_toml) k += "[routing]\n" + *o.routing_toml + "\n";
  if (!o.webhooks_toml.empty()) k += "[webhooks]\n" + o.webhooks_toml + "\n";
  if (o.movable_clock) k += "[testing]\nmovable_clock = true\n";
  return k + o.keeld_toml_extra + "\n";
}

Status write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return out ? Status::ok() : Status::error("cannot write " + path.string());
}

JsonResponse to_json_response(const net::HttpResponse& r) {
  JsonResponse out;
  out.status = r.status;
  out.text = r.body;
  out.replayed = r.header("Idempotent-Replayed") == "true";
  json::error_code ec;
  out.body = json::parse(r.body, ec);
  if (ec) out.body = nullptr;
  return out;
}

// A client of the simulator (no key; over TLS trusting `ca` when given), or of keeld with its
// admin key (`keeld`).
std::unique_ptr<net::HttpClient> client_for(uint16_t port, bool keeld = false,
                                            const std::filesystem::path& ca = {}) {
  net::HttpClientOptions o;
  o.endpoint.host = "127.0.0.1";
  o.endpoint.port = port;
  o.endpoint.tls = !ca.empty();
  o.tls.ca_file = ca.string();
  if (keeld) use_admin_key(&o);
  return std::make_unique<net::HttpClient>(o);
}

}  // namespace

std::string all_faults_toml(std::string_view psp, double rate, int64_t latency_ms_max) {
  if (rate <= 0) return {};
  const std::string r = std::to_string(rate);
  std::string s = "[psps." + std::string(psp) + ".faults]\n";
  s += "latency_ms = { min = 0, max = " + std::to_string(latency_ms_max) + " }\n";
  s += "decline_rate = " + r + "\n";
  s += "decline_codes = [ { code = \"insufficient_funds\", type = \"hard\" },\n";
  s += "                  { code = \"issuer_unavailable\", type = \"soft\" } ]\n";
  for (const char* key : {"error_5xx_rate", "refuse_rate", "black_hole_rate", "response_lost_rate",
                          "async_rate", "webhook_loss_rate", "webhook_duplicate_rate"}) {
    s += std::string(key) + " = " + r + "\n";
  }
  s += "async_delay_ms = { min = 10, max = 300 }\n";
  s += "webhook_delay_ms = { min = 0, max = 100 }\n";
  s += "webhook_reorder = true\n";
  return s;
}

std::string new_key() {
  static std::atomic<uint64_t> next{1};
  return "k-" + std::to_string(next.fetch_add(1));
}

Status PaymentsStack::start(PaymentsStackOptions options, std::unique_ptr<PaymentsStack>* out) {
  std::unique_ptr<PaymentsStack> s(new PaymentsStack());
  s->options_ = std::move(options);
  s->data_dir_ = s->options_.data_dir.empty() ? s->dir_.path() / "data" : s->options_.data_dir;
  if (s->options_.psps.empty()) return Status::error("PaymentsStackOptions::psps is empty");
  if (s->options_.psp_tls) {
    TestPki pki;
    TestCertificate cert;
    Status made = TestPki::create(s->dir_.path(), "psp", &pki);
    if (made.is_ok()) made = pki.issue_now("psp-sim", {"127.0.0.1", "localhost"}, &cert);
    if (!made.is_ok()) return made;
    s->psp_ca_ = pki.ca_cert();
    if (s->options_.psp_tls_foreign_ca) {
      TestPki foreign;
      if (Status f = TestPki::create(s->dir_.path(), "foreign", &foreign); !f.is_ok()) return f;
      s->keeld_psp_ca_ = foreign.ca_cert();
    } else {
      s->keeld_psp_ca_ = s->psp_ca_;
    }
    s->options_.sim_args.insert(s->options_.sim_args.end(),
                                {"--tls-cert", cert.cert.string(), "--tls-key", cert.key.string()});
  }
  Status last = Status::error("no attempt");
  // The picked ports may be taken by someone else before the simulator binds them: try again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    s->sim_port_ = pick_free_port();
    s->psp_ports_.clear();
    if (s->options_.own_listeners) {
      for (const std::string& psp : s->options_.psps) s->psp_ports_[psp] = pick_free_port();
    }
    s->keeld_.reset();
    s->keeld_config_ = s->dir_.path() / "keeld.toml";
    if (Status w = write_file(s->keeld_config_, keeld_config(s->options_, s->sim_port_,
                                                             s->psp_ports_, s->keeld_psp_ca_));
        !w.is_ok()) {
      return w;
    }
    if (Status st = s->start_keeld(); !st.is_ok()) return st;
    const auto sim_path = s->dir_.path() / "psp-sim.toml";
    if (Status w = write_file(sim_path, sim_config(s->keeld_->port(), s->options_, s->psp_ports_));
        !w.is_ok()) {
      return w;
    }
    last = s->start_sim(sim_path);
    if (last.is_ok()) break;
  }
  if (!last.is_ok()) return last;
  s->sim_client_ = client_for(s->sim_->port(), false, s->psp_ca_);
  *out = std::move(s);
  return Status::ok();
}

PaymentsStack::~PaymentsStack() {
  keeld_client_.reset();
  sim_client_.reset();
  if (keeld_) keeld_->stop();
  if (sim_) sim_->stop();
}

Status PaymentsStack::start_sim(const std::filesystem::path& config) {
  const std::filesystem::path binary =
      options_.sim_binary.empty() ? build_path("src/psp_sim/keel-psp-sim") : options_.sim_binary;
  if (binary.empty()) return Status::error("KEEL_BUILD_DIR is not set");
  std::vector<std::string> argv = {binary.string(), "--config", config.string()};
  argv.insert(argv.end(), {"--listen", "127.0.0.1:" + std::to_string(sim_port_)});
  argv.insert(argv.end(), {"--seed", std::to_string(options_.seed)});
  argv.insert(argv.end(), options_.sim_args.begin(), options_.sim_args.end());
  if (options_.movable_clock) argv.push_back("--movable-clock");
  return ServerProcess::start(argv, 60'000, &sim_);
}

Status PaymentsStack::start_keeld() {
  KeeldOptions o;
  o.binary = options_.keeld_binary;
  o.data_dir = data_dir_;
  o.extra_args = {"--config", keeld_config_.string()};
  o.log_file = options_.keeld_log_file;
  for (const auto& a : options_.keeld_args) o.extra_args.push_back(a);
  if (Status s = KeeldProcess::start(o, &keeld_); !s.is_ok()) return s;
  keeld_client_ = client_for(keeld_->port(), true);
  return Status::ok();
}

Status PaymentsStack::restart_keeld(bool kill9) {
  keeld_client_.reset();
  kill9 ? keeld_->kill9() : keeld_->stop();
  const uint16_t port = keeld_->port();
  KeeldOptions o;
  o.data_dir = data_dir_;
  o.binary = options_.keeld_binary;
  o.listen = "127.0.0.1:" + std::to_string(port);  // the simulator's webhooks point here
  o.extra_args = {"--config", keeld_config_.string()};
  o.log_file = options_.keeld_log_file;
  for (const auto& a : options_.keeld_args) o.extra_args.push_back(a);
  Status last;
  for (int attempt = 0; attempt < 50; ++attempt) {  // the old socket may linger a moment
    last = KeeldProcess::start(o, &keeld_);
    if (last.is_ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!last.is_ok()) return last;
  keeld_client_ = client_for(keeld_->port(), true);
  return Status::ok();
}

JsonResponse PaymentsStack::post(std::string_view path, std::string_view body,
                                 std::string_view idempotency_key) {
  net::HttpHeaders headers;
  if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
  net::HttpResponse r;
  if (Status s = keeld_client_->request("POST", path, body.empty() ? "{}" : body, headers, &r);
      !s.is_ok()) {
    JsonResponse failed;
    failed.text = s.message();
    return failed;
  }
  return to_json_response(r);
}

JsonResponse PaymentsStack::post_webhook(std::string_view channel, std::string_view body) {
  net::HttpHeaders headers;
  headers.emplace_back("PSP-Signature",
                       connectors::sign_webhook("whsec_" + std::string(channel),
                                                static_cast<int64_t>(std::time(nullptr)), body));
  net::HttpResponse r;
  if (Status s =
          keeld_client_->request("POST", "/v1/webhooks/" + std::string(channel), body, headers, &r);
      !s.is_ok()) {
    JsonResponse failed;
    failed.text = s.message();
    return failed;
  }
  return to_json_response(r);
}

JsonResponse PaymentsStack::post_unshared(std::string_view path, std::string_view body,
                                          std::string_view idempotency_key) {
  const std::unique_ptr<net::HttpClient> client = client_for(keeld_->port(), true);
  net::HttpHeaders headers;
  if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", idempotency_key);
  net::HttpResponse r;
  if (Status s = client->request("POST", path, body.empty() ? "{}" : body, headers, &r);
      !s.is_ok()) {
    JsonResponse failed;
    failed.text = s.message();
    return failed;
  }
  return to_json_response(r);
}

JsonResponse PaymentsStack::get(std::string_view path) {
  net::HttpResponse r;
  if (Status s = keeld_client_->get(path, &r); !s.is_ok()) {
    JsonResponse failed;
    failed.text = s.message();
    return failed;
  }
  return to_json_response(r);
}

JsonResponse PaymentsStack::sim_request(std::string_view method, std::string_view path,
                                        std::string_view body) {
  net::HttpResponse r;
  if (Status s = sim_client_->request(method, path, body, {}, &r); !s.is_ok()) {
    JsonResponse failed;
    failed.text = s.message();
    return failed;
  }
  return to_json_response(r);
}

std::string PaymentsStack::create_merchant(std::string_view webhook_url,
                                           std::string_view webhook_secret) {
  json::object body{{"name", "test merchant"}};
  if (!webhook_url.empty()) {
    body["webhook_url"] = webhook_url;
    body["webhook_secret"] = webhook_secret;
  }
  const JsonResponse r = post("/v1/merchants", json::serialize(body));
  if (r.status != 200 || !r.body.is_object()) return {};
  return std::string(r.body.at("id").as_string());
}

std::string PaymentsStack::create_customer() {
  const JsonResponse r = post("/v1/customers", R"({"name":"test customer"})");
  if (r.status != 200 || !r.body.is_object()) return {};
  return std::string(r.body.at("id").as_string());
}

bool PaymentsStack::set_sim_faults(std::string_view psp, std::string_view faults_json) {
  const JsonResponse r =
      sim_request("PUT", "/admin/psps/" + std::string(psp) + "/faults", faults_json);
  return r.status == 200;
}

bool PaymentsStack::advance_clocks(int64_t seconds) {
  const std::string body = R"({"seconds": )" + std::to_string(seconds) + "}";
  return post("/v1/admin/clock/advance", body).status == 200 &&
         sim_request("POST", "/admin/clock/advance", body).status == 200;
}

bool PaymentsStack::set_sim_schedule(std::string_view psp, std::string_view schedule_json) {
  return sim_request("PUT", "/admin/psps/" + std::string(psp) + "/schedule", schedule_json)
             .status == 200;
}

bool PaymentsStack::clear_sim_schedule(std::string_view psp) {
  return sim_request("DELETE", "/admin/psps/" + std::string(psp) + "/schedule").status == 200;
}

bool PaymentsStack::set_sim_listener(std::string_view psp, bool accepting) {
  return sim_request("PUT", "/admin/psps/" + std::string(psp) + "/listener",
                     accepting ? R"({"accepting": true})" : R"({"accepting": false})")
             .status == 200;
}

uint16_t PaymentsStack::psp_port(std::string_view psp) const {
  const auto port = psp_ports_.find(psp);
  return port == psp_ports_.end() ? 0 : port->second;
}

std::map<std::string, json::object> PaymentsStack::channels() {
  std::map<std::string, json::object> out;
  const JsonResponse r = get("/v1/channels");
  const json::value* data =
      r.status == 200 && r.body.is_object() ? r.body.as_object().if_contains("data") : nullptr;
  if (data == nullptr || !data->is_array()) return out;
  for (const json::value& c : data->get_array()) {
    const json::value* id = c.is_object() ? c.as_object().if_contains("id") : nullptr;
    if (id != nullptr && id->is_string()) out[std::string(id->get_string())] = c.as_object();
  }
  return out;
}

std::map<std::string, json::object> PaymentsStack::sim_operations(std::string_view psp) {
  std::map<std::string, json::object> out;
  const JsonResponse r = sim_request("GET", "/admin/psps/" + std::string(psp) + "/operations");
  if (r.status != 200 || !r.body.is_object()) return out;
  const json::value* ops = r.body.as_object().if_contains("operations");
  if (ops == nullptr || !ops->is_array()) return out;
  for (const json::value& op : ops->get_array()) {
    if (!op.is_object() || !op.as_object().contains("reference")) continue;
    out[std::string(op.at("reference").as_string())] = op.as_object();
  }
  return out;
}

int64_t PaymentsStack::account_balance(std::string_view account, std::string_view field) {
  const JsonResponse r = get("/v1/accounts/" + std::string(account));
  if (r.status != 200 || !r.body.is_object()) return -1;
  const json::value* v = r.body.as_object().if_contains(field);
  return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}

JsonResponse PaymentsStack::admin_status() { return get("/v1/admin/status?full=true"); }

JsonResponse PaymentsStack::wait_settled(std::string_view path, int64_t timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  JsonResponse r;
  while (true) {
    r = get(path);
    if (r.status == 200 && r.body.is_object()) {
      const auto& o = r.body.as_object();
      const std::string_view status = o.at("status").as_string();
      const bool review = o.contains("requires_review") && o.at("requires_review").as_bool();
      if (status != "processing" && status != "pending" && !review) return r;
    }
    if (std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace keel::testing
