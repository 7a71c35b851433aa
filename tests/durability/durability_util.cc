#include "durability_util.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/json_codec.h"

namespace keel::durability {
namespace json = boost::json;

uint64_t test_seed() {
  if (const char* s = std::getenv("KEEL_TEST_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 10);
  }
  return std::random_device{}() * uint64_t{0x100000001} ^ std::random_device{}();
}

Status start_keeld(const std::filesystem::path& data_dir, const std::string& config,
                   std::unique_ptr<testing::KeeldProcess>* out) {
  testing::KeeldOptions options;
  options.data_dir = data_dir;
  options.extra_args = {"--log-level", "warn"};
  if (!config.empty()) {
    const auto config_path = data_dir.parent_path() / "keeld.toml";
    write_file(config_path, config);
    options.extra_args.push_back("--config");
    options.extra_args.push_back(config_path.string());
  }
  return testing::KeeldProcess::start(std::move(options), out);
}

std::unique_ptr<net::HttpClient> make_client(uint16_t port) {
  net::HttpClientOptions options;
  options.endpoint = {"127.0.0.1", port};
  testing::use_admin_key(&options);
  options.connect_timeout_ms = 5'000;
  options.io_timeout_ms = 60'000;
  return std::make_unique<net::HttpClient>(options);
}

namespace {

template <typename Event, typename ToJson>
std::string events_body(std::span<const Event> events, ToJson to_json) {
  json::array data;
  data.reserve(events.size());
  for (const Event& e : events) data.emplace_back(to_json(e));
  return json::serialize(json::object{{"data", std::move(data)}});
}

// Parses a JSON object answer; nullopt if it is not one.
std::optional<json::object> parse_object(std::string_view body) {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

std::string string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return std::string(v->get_string());
}

int64_t int_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return -1;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->get_uint64());
  return -1;
}

Status bad_answer(std::string_view what, const net::HttpResponse& r) {
  return Status::error(std::string(what) + ": HTTP " + std::to_string(r.status) + " " + r.body);
}

// The fields of a transfer object; nullopt if a flag is unknown.
std::optional<StoredTransfer> transfer_from_json(const json::object& o) {
  StoredTransfer t;
  t.id = string_field(o, "id");
  t.debit_account_id = string_field(o, "debit_account_id");
  t.credit_account_id = string_field(o, "credit_account_id");
  t.amount = int_field(o, "amount");
  t.currency = string_field(o, "currency");
  t.pending_id = string_field(o, "pending_id");
  t.timeout_s = static_cast<uint32_t>(int_field(o, "timeout_seconds"));
  t.pending_state = string_field(o, "pending_state");
  if (const json::value* flags = o.if_contains("flags"); flags != nullptr && flags->is_array()) {
    for (const json::value& f : flags->get_array()) {
      const uint16_t bit =
          f.is_string() ? ledger::transfer_flag_from_name(std::string_view(f.get_string())) : 0;
      if (bit == 0) return std::nullopt;
      t.flags |= bit;
    }
  }
  return t;
}

}  // namespace

std::string accounts_body(std::span<const ledger::AccountEvent> events) {
  return events_body(events, api::account_event_to_json);
}

std::string transfers_body(std::span<const ledger::TransferEvent> events) {
  return events_body(events, api::transfer_event_to_json);
}

PostOutcome post_events(net::HttpClient& client, std::string_view target, std::string_view body,
                        std::span<const std::string> ids) {
  PostOutcome out;
  net::HttpResponse response;
  if (Status s = client.post(target, body, &response); !s.is_ok()) {
    out.problem = s.message();
    return out;
  }
  out.answered = true;
  out.status = response.status;
  if (response.status != 200) return out;
  const auto doc = parse_object(response.body);
  const json::value* data = doc ? doc->if_contains("data") : nullptr;
  if (data == nullptr || !data->is_array() || data->get_array().size() != ids.size()) {
    out.problem = "200 answer without one result per event: " + response.body.substr(0, 200);
    return out;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const json::value& item = data->get_array()[i];
    if (!item.is_object() || int_field(item.get_object(), "index") != static_cast<int64_t>(i) ||
        string_field(item.get_object(), "id") != ids[i]) {
      out.problem = "result " + std::to_string(i) + " does not match event " + ids[i] + ": " +
                    json::serialize(item);
      out.results.clear();
      return out;
    }
    out.results.push_back(string_field(item.get_object(), "result"));
  }
  return out;
}

namespace {

template <typename Event>
Status create_all(net::HttpClient& client, std::string_view target, const std::string& body,
                  const std::vector<Event>& events) {
  std::vector<std::string> ids;
  for (const Event& e : events) ids.push_back(e.id);
  const PostOutcome o = post_events(client, target, body, ids);
  if (!o.answered || o.status != 200 || !o.problem.empty()) {
    return Status::error(std::string(target) + ": HTTP " + std::to_string(o.status) + " " +
                         o.problem);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (o.results[i] != "ok") {
      return Status::error(std::string(target) + " " + ids[i] + ": " + o.results[i]);
    }
  }
  return Status::ok();
}

}  // namespace

Status create_accounts(net::HttpClient& client, const std::vector<ledger::AccountEvent>& events) {
  return create_all(client, "/v1/accounts", accounts_body(events), events);
}

Status create_transfers(net::HttpClient& client, const std::vector<ledger::TransferEvent>& events) {
  return create_all(client, "/v1/transfers", transfers_body(events), events);
}

Status get_transfer(net::HttpClient& client, const std::string& id,
                    std::optional<StoredTransfer>* out) {
  net::HttpResponse r;
  if (Status s = client.get("/v1/transfers/" + id, &r); !s.is_ok()) return s;
  if (r.status == 404) {
    out->reset();
    return Status::ok();
  }
  const auto o = r.status == 200 ? parse_object(r.body) : std::nullopt;
  if (!o) return bad_answer("GET /v1/transfers/" + id, r);
  auto t = transfer_from_json(*o);
  if (!t) return bad_answer("GET /v1/transfers/" + id, r);
  *out = std::move(t);
  return Status::ok();
}

Status list_new_transfers(net::HttpClient& client, const std::string& account_id,
                          const std::function<bool(const std::string&)>& seen,
                          std::vector<StoredTransfer>* out) {
  std::string after;
  while (true) {
    std::string target = "/v1/accounts/" + account_id + "/transfers?limit=1000";
    if (!after.empty()) target += "&starting_after=" + after;
    net::HttpResponse r;
    if (Status s = client.get(target, &r); !s.is_ok()) return s;
    const auto o = r.status == 200 ? parse_object(r.body) : std::nullopt;
    const json::value* data = o ? o->if_contains("data") : nullptr;
    const json::value* has_more = o ? o->if_contains("has_more") : nullptr;
    if (data == nullptr || !data->is_array() || has_more == nullptr || !has_more->is_bool()) {
      return bad_answer("GET " + target, r);
    }
    if (data->get_array().empty() && has_more->get_bool()) {
      return bad_answer("GET " + target + " (has_more without data)", r);
    }
    for (const json::value& item : data->get_array()) {
      auto t = item.is_object() ? transfer_from_json(item.get_object()) : std::nullopt;
      if (!t) return bad_answer("GET " + target, r);
      if (seen(t->id)) return Status::ok();
      after = t->id;
      out->push_back(std::move(*t));
    }
    if (!has_more->get_bool()) return Status::ok();
  }
}

Status get_balances(net::HttpClient& client, const std::string& id, ledger::Balances* out) {
  net::HttpResponse r;
  if (Status s = client.get("/v1/accounts/" + id, &r); !s.is_ok()) return s;
  const auto o = r.status == 200 ? parse_object(r.body) : std::nullopt;
  if (!o) return bad_answer("GET /v1/accounts/" + id, r);
  out->debits_pending = int_field(*o, "debits_pending");
  out->debits_posted = int_field(*o, "debits_posted");
  out->credits_pending = int_field(*o, "credits_pending");
  out->credits_posted = int_field(*o, "credits_posted");
  return Status::ok();
}

Status get_full_status(net::HttpClient& client, json::object* out) {
  net::HttpResponse r;
  if (Status s = client.get("/v1/admin/status?full=true", &r); !s.is_ok()) return s;
  auto o = r.status == 200 ? parse_object(r.body) : std::nullopt;
  if (!o) return bad_answer("GET /v1/admin/status", r);
  *out = std::move(*o);
  return Status::ok();
}

Status get_transfers(uint16_t port, const std::vector<std::string>& ids, size_t connections,
                     TransferLookup* out) {
  connections = std::max<size_t>(1, std::min(connections, ids.size()));
  std::vector<TransferLookup> found(connections);
  std::vector<Status> status(connections);
  std::vector<std::thread> threads;
  for (size_t c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      auto client = make_client(port);
      for (size_t i = c; i < ids.size(); i += connections) {
        std::optional<StoredTransfer> t;
        status[c] = get_transfer(*client, ids[i], &t);
        if (!status[c].is_ok()) return;
        found[c].emplace(ids[i], std::move(t));
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t c = 0; c < connections; ++c) {
    if (!status[c].is_ok()) return status[c];
    out->merge(found[c]);
  }
  return Status::ok();
}

StoredTransfer expected_transfer(const ledger::TransferEvent& event,
                                 const ledger::TransferEvent* hold) {
  namespace tf = ledger::transfer_flags;
  StoredTransfer t;
  t.id = event.id;
  t.flags = event.flags;
  t.pending_id = event.pending_id;
  t.timeout_s = event.timeout_s;
  if ((event.flags & (tf::kPostPending | tf::kVoidPending)) == 0) {
    t.debit_account_id = event.debit_account_id;
    t.credit_account_id = event.credit_account_id;
    t.amount = event.amount;
    t.currency = std::string(event.currency.code());
    return t;
  }
  t.debit_account_id = hold->debit_account_id;
  t.credit_account_id = hold->credit_account_id;
  t.currency = std::string(hold->currency.code());
  const bool whole = (event.flags & tf::kVoidPending) != 0 || event.amount == 0;
  t.amount = whole ? hold->amount : event.amount;
  return t;
}

std::string transfer_mismatch(const StoredTransfer& e, const StoredTransfer& s) {
  std::ostringstream out;
  auto field = [&](std::string_view name, const auto& want, const auto& got) {
    if (want != got) out << " " << name << ": want " << want << ", got " << got << ";";
  };
  field("id", e.id, s.id);
  field("debit_account_id", e.debit_account_id, s.debit_account_id);
  field("credit_account_id", e.credit_account_id, s.credit_account_id);
  field("amount", e.amount, s.amount);
  field("currency", e.currency, s.currency);
  field("flags", e.flags, s.flags);
  field("pending_id", e.pending_id, s.pending_id);
  field("timeout_seconds", e.timeout_s, s.timeout_s);
  return out.str();
}

void add_effect(const StoredTransfer& t, std::map<std::string, ledger::Balances>* balances) {
  namespace tf = ledger::transfer_flags;
  ledger::Balances& d = (*balances)[t.debit_account_id];
  ledger::Balances& c = (*balances)[t.credit_account_id];
  if ((t.flags & tf::kVoidPending) != 0) return;
  if ((t.flags & tf::kPending) != 0) {
    if (t.pending_state != "pending") return;
    d.debits_pending += t.amount;
    c.credits_pending += t.amount;
    return;
  }
  d.debits_posted += t.amount;  // plain, or the amount a post moved to posted
  c.credits_posted += t.amount;
}

std::string balances_text(const ledger::Balances& b) {
  return "debits_pending " + std::to_string(b.debits_pending) + ", debits_posted " +
         std::to_string(b.debits_posted) + ", credits_pending " +
         std::to_string(b.credits_pending) + ", credits_posted " + std::to_string(b.credits_posted);
}

std::vector<std::vector<size_t>> chains_of(std::span<const ledger::TransferEvent> events) {
  std::vector<std::vector<size_t>> chains;
  bool open = false;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!open) chains.emplace_back();
    chains.back().push_back(i);
    open = (events[i].flags & ledger::transfer_flags::kLinked) != 0;
  }
  return chains;
}

std::vector<size_t> record_offsets(const std::string& bytes) {
  constexpr size_t kHeaderBytes = 40;
  constexpr size_t kPayloadLenAt = 12;
  std::vector<size_t> offsets;
  size_t off = 0;
  while (off + kHeaderBytes <= bytes.size()) {
    uint32_t payload_len = 0;
    std::memcpy(&payload_len, bytes.data() + off + kPayloadLenAt, sizeof payload_len);
    offsets.push_back(off);
    off += kHeaderBytes + payload_len;
  }
  return offsets;
}

std::vector<std::filesystem::path> segment_files(const std::filesystem::path& data_dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("journal-") && name.ends_with(".seg")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace keel::durability
