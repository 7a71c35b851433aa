// Soak (issue 4): 10,000 card payments through keeld and keel-psp-sim with every cardco fault at
// 10 % (5xx, refused and black-holed requests, lost responses, hard and soft declines, async
// settlement, lost, duplicated and reordered webhooks, small latency), from concurrent clients
// that retry like real ones. Afterwards: no payment is lost or left processing, none is charged
// twice, and the simulator's books, keel's payments and keel's ledger agree payment by payment.
//
// Seeded: the simulator's seed, the amounts, merchants, keys and client behaviour come from
// kSeed. keeld draws payment ids at random, and the simulator keys its faults on the attempt ids
// (`{payment id}_a{n}`), so which payment meets which fault differs from run to run; the rates
// do not.
//
// About 90 s under ASan + UBSan on 2 cores (more when the machine is busy).

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testing/payments_stack.h"

namespace keel::testing {
namespace {
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kSeed = 20'240'401;
constexpr size_t kPayments = 10'000;
constexpr size_t kClients = 32;
constexpr size_t kMerchants = 4;
constexpr double kFaultRate = 0.1;
constexpr int64_t kLatencyMsMax = 3;
// Past it, a payment whose attempt is still open (unknown or pending) goes to review, and the
// resolver's answer ends it later. Short, so that the payments that meet several faults in a row
// take that path too (a retry after "never received" comes kNotFoundGraceMs late).
constexpr int64_t kProcessingDeadlineS = 3;
// A status query's "never received" is believed after this (keeld's not_found_grace_ms), so a
// refused request is retried before the deadline.
constexpr int64_t kNotFoundGraceMs = 2'000;
constexpr int64_t kSettleWaitMs = 100;  // confirm waits this long for the PSP's outcome
constexpr int kRequestTriesMax = 100;   // per request: transport errors and 5xx
constexpr int64_t kImpatientTimeoutMs = 1;
// After the last client finished: every payment has left `processing` by then.
constexpr int64_t kSettleBoundMs = 60'000;
constexpr size_t kProblemsShown = 20;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What the seeded plan says one payment is and how its client behaves.
struct Plan {
  int64_t amount = 0;
  size_t merchant = 0;
  bool repeat_create = false;      // sends the create again with the same key (a client retry)
  bool repeat_confirm = false;     // sends the confirm again with the same key
  bool confirm_new_key = false;    // and a second confirm with a new key (a double click)
  bool impatient_confirm = false;  // the first confirm gives up on its answer, then retries
};

std::vector<Plan> make_plans() {
  std::mt19937_64 rng(kSeed);
  std::vector<Plan> plans(kPayments);
  for (Plan& p : plans) {
    p.amount = 100 + static_cast<int64_t>(rng() % 99'900);
    p.merchant = rng() % kMerchants;
    p.repeat_create = rng() % 20 == 0;
    p.repeat_confirm = rng() % 10 == 0;
    p.confirm_new_key = rng() % 20 == 0;
    p.impatient_confirm = rng() % 20 == 0;
  }
  return plans;
}

// What one client saw of its payments.
struct ClientLog {
  std::vector<std::pair<size_t, std::string>> ids;  // (plan index, payment id)
  std::vector<std::string> problems;
  uint64_t retried = 0;          // requests sent again after a transport error or a 5xx
  uint64_t confirm_in_use = 0;   // a confirm answered 409 idempotency_key_in_use
  uint64_t confirm_settled = 0;  // answered succeeded or failed within settle_wait_ms
};

JsonResponse parse_response(const net::HttpResponse& r) {
  JsonResponse out;
  out.status = r.status;
  out.text = r.body;
  out.replayed = r.header("Idempotent-Replayed") == "true";
  json::error_code ec;
  out.body = json::parse(r.body, ec);
  if (ec) out.body = nullptr;
  return out;
}

std::string error_code_of(const JsonResponse& r) {
  if (!r.body.is_object()) return {};
  const json::value* e = r.body.as_object().if_contains("error");
  if (e == nullptr || !e->is_object() || !e->as_object().contains("code")) return {};
  return std::string(e->as_object().at("code").as_string());
}

std::string string_field(const JsonResponse& r, std::string_view key) {
  if (!r.body.is_object()) return {};
  const json::value* v = r.body.as_object().if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// A merchant of the soak and its API key: its checkout sends every request with it (plain
// Bearer, as merchants do), so the soak also runs the tenant checks.
struct Merchant {
  std::string id;
  std::string api_key;
};

// POSTs until keeld answers other than with a 5xx; a transport error or a 5xx is retried with
// the same Idempotency-Key (the exactly-once contract). status 0: gave up.
JsonResponse post_until_answered(net::HttpClient& client, const std::string& path,
                                 const std::string& body, const std::string& key,
                                 const std::string& api_key, ClientLog* log) {
  const net::HttpHeaders headers = {{"Idempotency-Key", key},
                                    {"Authorization", "Bearer " + api_key}};
  for (int attempt = 0; attempt < kRequestTriesMax; ++attempt) {
    if (attempt > 0) {
      ++log->retried;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(10 * attempt, 200)));
    }
    net::HttpResponse r;
    if (!client.request("POST", path, body, headers, &r).is_ok()) continue;
    if (r.status >= 500) continue;
    return parse_response(r);
  }
  return {};
}

// One client's connections to keeld: a patient one, and an impatient one that gives up on its
// answer after kImpatientTimeoutMs (a request that timed out at the client).
struct Connections {
  net::HttpClient patient;
  net::HttpClient impatient;
};

net::HttpClientOptions client_options(uint16_t port, int64_t io_timeout_ms) {
  net::HttpClientOptions o;
  o.endpoint = {"127.0.0.1", port};
  o.io_timeout_ms = io_timeout_ms;  // the merchant's key goes with each request
  return o;
}

// Creates plan[i]'s payment; its id, or empty (with a problem logged).
std::string create(net::HttpClient& client, const Merchant& merchant, const std::string& key,
                   const Plan& plan, ClientLog* log) {
  const std::string body = R"({"amount":)" + std::to_string(plan.amount) +
                           R"(,"currency":"USD","merchant":")" + merchant.id +
                           R"(","payment_method":"tok_visa"})";
  const JsonResponse created =
      post_until_answered(client, "/v1/payments", body, key, merchant.api_key, log);
  const std::string id = string_field(created, "id");
  if (created.status != 200 || id.empty() ||
      string_field(created, "status") != "requires_confirmation") {
    log->problems.push_back("create " + key + ": " + std::to_string(created.status) + " " +
                            created.text.substr(0, 200));
    return {};
  }
  if (plan.repeat_create) {
    const JsonResponse again =
        post_until_answered(client, "/v1/payments", body, key, merchant.api_key, log);
    if (again.status != 200 || !again.replayed || string_field(again, "id") != id) {
      log->problems.push_back("repeated create of " + id +
                              " was not replayed: " + again.text.substr(0, 200));
    }
  }
  return id;
}

bool in_use(const JsonResponse& r) {
  return r.status == 409 && error_code_of(r) == "idempotency_key_in_use";
}

// Confirms payment `id` as plan says its client does.
void confirm(Connections& c, const std::string& id, const std::string& key,
             const std::string& api_key, const Plan& plan, ClientLog* log) {
  const std::string path = "/v1/payments/" + id + "/confirm";
  if (plan.impatient_confirm) {
    // Gives up before the answer; whether keeld got it or not, the retry below (same key) must
    // not confirm twice.
    net::HttpResponse ignored;
    if (!c.impatient
             .request("POST", path, "{}",
                      {{"Idempotency-Key", key}, {"Authorization", "Bearer " + api_key}}, &ignored)
             .is_ok()) {
      ++log->retried;
    }
  }
  const JsonResponse confirmed = post_until_answered(c.patient, path, "{}", key, api_key, log);
  const std::string status = string_field(confirmed, "status");
  if (in_use(confirmed)) {
    ++log->confirm_in_use;  // an earlier try of ours reached keeld: it has the confirm
  } else if (confirmed.status != 200 ||
             (status != "processing" && status != "succeeded" && status != "failed")) {
    log->problems.push_back("confirm " + id + ": " + std::to_string(confirmed.status) + " " +
                            confirmed.text.substr(0, 200));
  } else if (status != "processing") {
    ++log->confirm_settled;
  }
  if (plan.repeat_confirm) {
    const JsonResponse again = post_until_answered(c.patient, path, "{}", key, api_key, log);
    if (!in_use(again) &&
        !(again.status == 200 && again.replayed && string_field(again, "id") == id)) {
      log->problems.push_back("repeated confirm of " + id + ": " + std::to_string(again.status) +
                              " " + again.text.substr(0, 200));
    }
  }
  if (plan.confirm_new_key) {
    const JsonResponse other =
        post_until_answered(c.patient, path, "{}", key + "-again", api_key, log);
    if (other.status != 409 || error_code_of(other) != "payment_unexpected_state") {
      log->problems.push_back("second confirm of " + id + " with a new key: " +
                              std::to_string(other.status) + " " + other.text.substr(0, 200));
    }
  }
}

// Creates and confirms plan[i]'s payment as its client would.
void pay(Connections& c, const std::vector<Merchant>& merchants, size_t i, const Plan& plan,
         ClientLog* log) {
  const std::string prefix = "soak-" + std::to_string(kSeed) + "-" + std::to_string(i);
  const Merchant& merchant = merchants[plan.merchant];
  const std::string id = create(c.patient, merchant, prefix + "-create", plan, log);
  if (id.empty()) return;
  log->ids.emplace_back(i, id);
  confirm(c, id, prefix + "-confirm", merchant.api_key, plan, log);
}

// A payment as keeld shows it at the end.
struct KeelPayment {
  std::string merchant;
  std::string status;
  int64_t amount = 0;
  int64_t captured = 0;
  int64_t merchant_fee = 0;
  int64_t psp_fee = 0;
  bool review = false;
  bool was_in_review = false;  // its timeline shows "deadline: review"
  std::string ended;  // error code and cause of the last change: "do_not_honor by psp_response"
  std::vector<std::pair<std::string, std::string>> attempts;  // (id, status)
};

// An operation as the simulator's books show it.
struct SimOperation {
  std::string status;
  int64_t captured = 0;
  int64_t fee = 0;
};

int64_t int_field(const json::object& o, std::string_view key) {
  return o.at(key).to_number<int64_t>();
}

// The simulator's books for cardco.
struct SimBooks {
  std::map<std::string, SimOperation> ops;  // by reference
  int64_t captured = 0;                     // sum of captured_amount
  int64_t fees = 0;                         // of the captured operations
  int64_t totals_captured = 0;              // its "totals" line for captured USD
  std::map<std::string, size_t> by_status;
};

SimBooks read_sim_books(const json::value& body) {
  SimBooks b;
  for (const json::value& v : body.at("operations").as_array()) {
    const json::object& o = v.as_object();
    SimOperation op{std::string(o.at("status").as_string()), int_field(o, "captured_amount"),
                    int_field(o, "fee")};
    ++b.by_status[op.status];
    b.captured += op.captured;
    if (op.status == "captured") b.fees += op.fee;
    b.ops.emplace(std::string(o.at("reference").as_string()), op);
  }
  for (const json::value& t : body.at("totals").as_array()) {
    if (t.at("status").as_string() == "captured" && t.at("currency").as_string() == "USD") {
      b.totals_captured = int_field(t.as_object(), "amount");
    }
  }
  return b;
}

// Collects what is wrong, so that one run shows the first few problems and how many there are.
struct Problems {
  std::vector<std::string> found;
  void add(std::string what) { found.push_back(std::move(what)); }
  void expect_none(std::string_view what) const {
    std::string shown;
    for (size_t i = 0; i < std::min(found.size(), kProblemsShown); ++i) shown += found[i] + "\n";
    EXPECT_TRUE(found.empty()) << found.size() << " problem(s) with " << what << ":\n" << shown;
  }
};

// Sums over keel's payments, for the account checks and the summary.
struct Tally {
  std::map<std::string, int64_t> succeeded_by_merchant, fees_by_merchant;
  size_t succeeded = 0, failed = 0, reviewed = 0;
  std::map<std::string, size_t> failures;  // by how they ended

  void add(const KeelPayment& p) {
    if (p.status == "succeeded") {
      ++succeeded;
      succeeded_by_merchant[p.merchant] += p.amount;
    } else {
      ++failed;
      ++failures[p.ended];
    }
    fees_by_merchant[p.merchant] += p.merchant_fee;
    reviewed += p.was_in_review ? 1 : 0;
  }
};

// One payment against the PSP's books and the ledger: final, charged at most once, and the PSP,
// keel's payment and the merchant's credit (`credited`) say the same, attempt by attempt.
void check_payment(const std::string& id, const KeelPayment& p, const SimBooks& sim,
                   int64_t credited, Problems* problems) {
  if (p.status != "succeeded" && p.status != "failed") problems->add(id + ": " + p.status);
  if (p.review) problems->add(id + ": still requires review");
  int64_t captured_at_psp = 0, fee_at_psp = 0;
  size_t captures = 0;
  for (const auto& [a, status] : p.attempts) {
    const auto op = sim.ops.find(a);
    // keel's verdict is what happened at the PSP: approved is captured, a decline declined,
    // retryable ("nothing happened") no operation at all; pending or unknown is left open.
    const std::string at_psp = op == sim.ops.end() ? "absent" : op->second.status;
    const bool agree = (status == "approved" && at_psp == "captured") ||
                       (status.starts_with("declined_") && at_psp == "declined") ||
                       (status == "retryable" && at_psp == "absent");
    if (!agree) problems->add(id + ": attempt " + a + " is " + status + ", at the PSP " + at_psp);
    if (op == sim.ops.end()) continue;
    captured_at_psp += op->second.captured;
    if (op->second.status == "captured") {
      ++captures;
      fee_at_psp += op->second.fee;
    }
  }
  if (captures > 1) problems->add(id + ": captured " + std::to_string(captures) + " times");
  const int64_t expected = p.status == "succeeded" ? p.amount : 0;
  if (captured_at_psp != expected || p.captured != expected || credited != expected) {
    problems->add(id + " (" + p.status + ", amount " + std::to_string(p.amount) +
                  "): PSP captured " + std::to_string(captured_at_psp) + ", keel captured " +
                  std::to_string(p.captured) + ", merchant credited " + std::to_string(credited));
  }
  if (p.psp_fee != fee_at_psp) {
    problems->add(id + ": PSP fee " + std::to_string(fee_at_psp) + ", keel booked " +
                  std::to_string(p.psp_fee));
  }
}

// Every payment a client created is listed exactly once, as the client sent it, and nothing
// else is: none lost, none made up (a retried create made no second payment).
void check_identity(const std::map<std::string, size_t>& plan_of,
                    const std::map<std::string, KeelPayment>& payments,
                    const std::vector<Plan>& plans, const std::vector<std::string>& merchants,
                    Problems* problems) {
  for (const auto& [id, i] : plan_of) {
    if (!payments.contains(id)) problems->add(id + ": created, then lost (keeld does not list it)");
  }
  for (const auto& [id, p] : payments) {
    const auto plan = plan_of.find(id);
    if (plan == plan_of.end()) {
      problems->add(id + ": listed but no client created it");
    } else if (p.amount != plans[plan->second].amount ||
               p.merchant != merchants[plans[plan->second].merchant]) {
      problems->add(id + ": amount or merchant differ from what its client sent");
    }
  }
}

// Nothing at the PSP or in the ledger belongs to no payment.
void check_orphans(const std::map<std::string, KeelPayment>& payments, const SimBooks& sim,
                   const std::map<std::string, int64_t>& credits, Problems* problems) {
  std::set<std::string> attempts;
  for (const auto& [id, p] : payments) {
    for (const auto& [a, status] : p.attempts) attempts.insert(a);
  }
  for (const auto& [id, amount] : credits) {
    if (!payments.contains(id)) problems->add("merchant credited " + id + ", not a payment");
  }
  for (const auto& [reference, op] : sim.ops) {
    if (!attempts.contains(reference)) {
      problems->add("the PSP holds " + reference + " (" + op.status + ") that no payment knows");
    }
  }
}

class PaymentsSoak : public ::testing::Test {
 protected:
  void SetUp() override {
    PaymentsStackOptions o;
    o.seed = kSeed;
    o.sim_toml_extra = all_faults_toml("cardco", kFaultRate, kLatencyMsMax);
    o.payments_toml_extra = "processing_deadline_s = " + std::to_string(kProcessingDeadlineS) +
                            "\nsettle_wait_ms = " + std::to_string(kSettleWaitMs) + "\n";
    o.resolve_initial_ms = 50;
    o.resolve_max_ms = 500;
    o.not_found_grace_ms = kNotFoundGraceMs;
    o.total_timeout_ms = 500;  // a black hole ends as unknown after this
    o.channel_toml_extra = "connections_max = 64\nconnect_timeout_ms = 500\n";
    o.keeld_args = {"--log-level", "warn"};
    o.sim_args = {"--log-level", "warn"};
    o.keeld_toml_extra = "[auth.rate_limits.merchant]\nper_second = 0\n";  // the load is the test
    ASSERT_TRUE(PaymentsStack::start(o, &stack_).is_ok());
  }

  // Runs every plan from kClients threads, each with its own connection.
  std::vector<ClientLog> run_clients(const std::vector<Plan>& plans,
                                     const std::vector<Merchant>& merchants) {
    std::vector<ClientLog> logs(kClients);
    std::vector<std::thread> threads;
    for (size_t c = 0; c < kClients; ++c) {
      threads.emplace_back([&, c] {
        const uint16_t port = stack_->keeld().port();
        Connections connections{net::HttpClient(client_options(port, 30'000)),
                                net::HttpClient(client_options(port, kImpatientTimeoutMs))};
        for (size_t i = c; i < plans.size(); i += kClients) {
          pay(connections, merchants, i, plans[i], &logs[c]);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    return logs;
  }

  // Polls until no payment is processing (in review or not); false if kSettleBoundMs passes.
  bool wait_none_processing() {
    const auto deadline = Clock::now() + std::chrono::milliseconds(kSettleBoundMs);
    while (Clock::now() < deadline) {
      const JsonResponse r = stack_->get("/v1/payments?status=processing&limit=1");
      if (r.status == 200 && r.body.at("data").as_array().empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

  // Every payment keeld lists, by id.
  std::map<std::string, KeelPayment> list_payments() {
    std::map<std::string, KeelPayment> out;
    std::string after;
    while (true) {
      const JsonResponse r =
          stack_->get("/v1/payments?limit=100" + (after.empty() ? "" : "&starting_after=" + after));
      EXPECT_EQ(r.status, 200u) << r.text;
      if (r.status != 200) return out;
      for (const json::value& v : r.body.at("data").as_array()) {
        const json::object& o = v.as_object();
        KeelPayment p;
        p.merchant = std::string(o.at("merchant").as_string());
        p.status = std::string(o.at("status").as_string());
        p.amount = int_field(o, "amount");
        p.captured = int_field(o, "amount_captured");
        p.merchant_fee = int_field(o, "merchant_fee");
        p.psp_fee = int_field(o, "psp_fee");
        p.review = o.at("requires_review").as_bool();
        for (const json::value& a : o.at("attempts").as_array()) {
          p.attempts.emplace_back(a.at("id").as_string(), a.at("status").as_string());
        }
        for (const json::value& t : o.at("timeline").as_array()) {
          p.was_in_review = p.was_in_review || t.at("cause").as_string() == "deadline: review";
        }
        const json::value& code = o.at("error_code");
        const json::value& cause = o.at("timeline").as_array().back().at("cause");
        p.ended = (code.is_string() ? std::string(code.as_string()) : "-") + " by " +
                  std::string(cause.as_string().subview().substr(0, 12));
        after = std::string(o.at("id").as_string());
        out.emplace(after, std::move(p));
      }
      if (!r.body.at("has_more").as_bool()) return out;
    }
  }

  // What the ledger credited (posted) to `account` per payment, from its transfers
  // (`{payment id}.{step}`).
  std::map<std::string, int64_t> posted_credits(const std::string& account) {
    std::map<std::string, int64_t> out;
    std::string after;
    while (true) {
      const JsonResponse r = stack_->get("/v1/accounts/" + account + "/transfers?limit=1000" +
                                         (after.empty() ? "" : "&starting_after=" + after));
      if (r.status == 404) return out;  // no payment of this merchant succeeded
      EXPECT_EQ(r.status, 200u) << r.text;
      if (r.status != 200) return out;
      for (const json::value& v : r.body.at("data").as_array()) {
        const json::object& t = v.as_object();
        after = std::string(t.at("id").as_string());
        bool posted = true;
        for (const json::value& f : t.at("flags").as_array()) {
          posted = posted && f.as_string() != "pending" && f.as_string() != "void_pending";
        }
        if (!posted || t.at("credit_account_id").as_string() != account) continue;
        out[after.substr(0, after.find('.'))] += int_field(t, "amount");
      }
      if (!r.body.at("has_more").as_bool()) return out;
    }
  }

  json::object account(const std::string& id) {
    const JsonResponse r = stack_->get("/v1/accounts/" + id);
    if (r.status != 200)
      return json::object{{"debits_pending", 0},
                          {"debits_posted", 0},
                          {"credits_pending", 0},
                          {"credits_posted", 0}};
    return r.body.as_object();
  }

  // Account by account: what the merchants are owed, what the PSP owes keel and what it
  // charged, against the payments and the PSP's books; then the ledger's own invariants.
  void check_accounts(const std::vector<std::string>& merchants, Tally& tally,
                      const SimBooks& sim) {
    for (const std::string& m : merchants) {
      const json::object a = account("merchant:" + m + ":USD");
      EXPECT_EQ(int_field(a, "credits_posted"), tally.succeeded_by_merchant[m]) << m;
      EXPECT_EQ(int_field(a, "debits_posted"), tally.fees_by_merchant[m]) << m;
      EXPECT_EQ(int_field(a, "credits_pending"), 0) << m;
      EXPECT_EQ(int_field(a, "debits_pending"), 0) << m;
    }
    const json::object clearing = account("psp_clearing:cardco:USD");
    EXPECT_EQ(int_field(clearing, "debits_posted"), sim.captured);
    EXPECT_EQ(int_field(clearing, "debits_posted"), sim.totals_captured);
    EXPECT_EQ(int_field(clearing, "credits_posted"), sim.fees);
    EXPECT_EQ(int_field(clearing, "debits_pending"), 0);
    EXPECT_EQ(int_field(account("psp_fees:cardco:USD"), "debits_posted"), sim.fees);
    const JsonResponse status = stack_->get("/v1/admin/status?full=true");
    ASSERT_EQ(status.status, 200u);
    EXPECT_TRUE(status.body.at("invariants_ok").as_bool()) << status.text;
    // The run went through the history store: transfers, events, stored answers and payments
    // at rest left memory, and every read and check above merged both tiers.
    const json::object& h = status.body.at("history").as_object();
    for (const char* moved :
         {"transfers_moved", "events_moved", "idempotency_keys_moved", "payments_moved"}) {
      EXPECT_GT(int_field(h, moved), 0) << moved;
    }
    const json::object& p = status.body.at("payments").as_object();
    EXPECT_LT(int_field(p, "payments_in_memory"), int_field(p, "payments"));
    // Memory is bounded by what is open: once the tier caught up, keeld holds the payments in
    // review, the events whose delivery is pending, no settled idempotency record, and of the
    // ledger only the holds still open (those of the payments in review).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    json::object last;
    for (;;) {
      const JsonResponse r = stack_->get("/v1/admin/status?full=true");
      ASSERT_EQ(r.status, 200u);
      last = r.body.as_object();
      const json::object& q = last.at("payments").as_object();
      const bool bounded = int_field(last.at("history").as_object(), "queued") == 0 &&
                           int_field(q, "payments_in_memory") == int_field(q, "in_review") &&
                           int_field(q, "events_in_memory") == int_field(q, "deliveries_pending") &&
                           int_field(q, "idempotency_keys_in_memory") == 0 &&
                           int_field(last.at("counts").as_object(), "transfers_in_memory") <=
                               int_field(q, "in_review");
      if (bounded) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "memory holds more than what is open: " << json::serialize(last);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::unique_ptr<PaymentsStack> stack_;
};

// What the clients saw, merged.
struct ClientsSeen {
  std::map<std::string, size_t> plan_of;  // payment id -> plan index
  uint64_t retried = 0, in_use = 0, settled_in_confirm = 0;
};

ClientsSeen merge(const std::vector<ClientLog>& logs, Problems* problems) {
  ClientsSeen seen;
  for (const ClientLog& log : logs) {
    for (const auto& p : log.problems) problems->add(p);
    for (const auto& [i, id] : log.ids) seen.plan_of[id] = i;
    seen.retried += log.retried;
    seen.in_use += log.confirm_in_use;
    seen.settled_in_confirm += log.confirm_settled;
  }
  return seen;
}

void print_summary(const ClientsSeen& seen, const Tally& tally, const SimBooks& sim, double load_s,
                   double settle_s, double whole_s) {
  std::string by_status;
  for (const auto& [s, n] : sim.by_status) by_status += " " + s + "=" + std::to_string(n);
  std::string failed_how;
  for (const auto& [how, n] : tally.failures) failed_how += " [" + how + "]=" + std::to_string(n);
  std::printf(
      "soak: %zu payments, %zu clients: %zu succeeded, %zu failed, %zu went through review; "
      "%llu settled within confirm; %llu requests retried, %llu confirms answered in use\n"
      "soak: failed:%s\n"
      "soak: PSP operations:%s\n"
      "soak: load %.1f s, settling %.1f s, whole test %.1f s\n",
      tally.succeeded + tally.failed, kClients, tally.succeeded, tally.failed, tally.reviewed,
      static_cast<unsigned long long>(seen.settled_in_confirm),
      static_cast<unsigned long long>(seen.retried), static_cast<unsigned long long>(seen.in_use),
      failed_how.c_str(), by_status.c_str(), load_s, settle_s, whole_s);
}

TEST_F(PaymentsSoak, TenThousandPaymentsUnderAllFaultsSettleOnceAndBooksAgree) {
  const auto began = Clock::now();
  std::vector<std::string> merchants;
  std::vector<Merchant> checkouts;
  for (size_t m = 0; m < kMerchants; ++m) {
    merchants.push_back(stack_->create_merchant());
    ASSERT_FALSE(merchants.back().empty());
    const JsonResponse key = stack_->post(
        "/v1/admin/keys", R"({"role": "merchant", "merchant": ")" + merchants.back() + "\"}");
    ASSERT_EQ(key.status, 200u) << key.text;
    checkouts.push_back({merchants.back(), string_field(key, "key")});
  }
  const std::vector<Plan> plans = make_plans();
  Problems client_problems;
  const ClientsSeen seen = merge(run_clients(plans, checkouts), &client_problems);
  const double load_s = seconds_since(began);
  // Every payment created and confirmed, with the answers the idempotency contract promises.
  client_problems.expect_none("the clients' requests");
  EXPECT_EQ(seen.plan_of.size(), kPayments);

  // No payment stays processing: the deadline and the resolver end every one.
  const auto settle_began = Clock::now();
  EXPECT_TRUE(wait_none_processing())
      << "payments still processing " << kSettleBoundMs << " ms after the last client finished";
  const double settle_s = seconds_since(settle_began);
  // Both programs ran through (an exit status here: one stopped under the load).
  ASSERT_EQ(stack_->sim().wait_exit(0), -2) << "keel-psp-sim stopped";
  ASSERT_EQ(stack_->keeld().wait_exit(0), -2) << "keeld stopped";

  const std::map<std::string, KeelPayment> payments = list_payments();
  const JsonResponse books = stack_->sim_request("GET", "/admin/psps/cardco/operations");
  ASSERT_EQ(books.status, 200u) << books.text.substr(0, 300);
  const SimBooks sim = read_sim_books(books.body);
  std::map<std::string, int64_t> credits;  // payment id -> posted to its merchant
  for (const std::string& m : merchants) {
    for (const auto& [id, amount] : posted_credits("merchant:" + m + ":USD")) credits[id] += amount;
  }

  Problems problems;
  check_identity(seen.plan_of, payments, plans, merchants, &problems);
  Tally tally;
  for (const auto& [id, p] : payments) {
    check_payment(id, p, sim, credits.contains(id) ? credits.at(id) : 0, &problems);
    tally.add(p);
  }
  check_orphans(payments, sim, credits, &problems);
  problems.expect_none("payments against the PSP's books and the ledger");
  EXPECT_EQ(payments.size(), kPayments);
  check_accounts(merchants, tally, sim);
  print_summary(seen, tally, sim, load_s, settle_s, seconds_since(began));
}

}  // namespace
}  // namespace keel::testing
