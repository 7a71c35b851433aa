// kill -9 under load, over and over, on one data directory. After every crash the journal must
// verify offline, and the restarted keeld must hold every acknowledged transfer exactly as sent,
// nothing that was refused, every linked chain whole or not at all, and balances that are the
// sum of the transfers that exist. Randomness is seeded: KEEL_TEST_SEED=<seed> replays a run.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "api/json_codec.h"
#include "durability_util.h"
#include "engine/engine.h"
#include "testing/temp_dir.h"

namespace keel::durability {
namespace {

namespace json = boost::json;
namespace tf = ledger::transfer_flags;
using ledger::TransferEvent;

constexpr int kRounds = 20;
constexpr int kClients = 4;
constexpr int kKillAfterMsMin = 50;
constexpr int kKillAfterMsMax = 400;
constexpr int64_t kFundingAmount = 10'000'000;
constexpr int64_t kOverdraftAmount = 1'000'000'000'000;  // more than any wallet holds
constexpr size_t kRetriesPerClientMax = 5;
constexpr size_t kLeftoverHoldsPerClientMax = 400;
constexpr size_t kHoldsEndedPerRequestMax = 100;
constexpr size_t kOwnHoldsEndedPerRequestMax = 20;
constexpr size_t kFetchConnections = 4;
// Every transfer is read through the accounts' listings (GET /v1/accounts/{id}/transfers, 1000
// a page): keeld under ASan at -O0 answers only about a thousand GETs a second on 2 cores. A
// sample of each round's ids is also read one by one (GET /v1/transfers/{id}) and compared.
constexpr size_t kSampledPerRound = 200;
constexpr size_t kProblemsShownMax = 20;
// Small snapshots and segments, so that crashes also hit snapshot writes and segment rotation.
constexpr const char* kKeeldConfig =
    "[engine]\n"
    "snapshot_interval_events = 3000\n"
    "segment_bytes_max = 1048576\n";

struct AccountSpec {
  std::string id;
  const char* currency;
  bool limited;  // debits_must_not_exceed_credits, funded before the load
};

// 2 banks, 40 USD and 10 EUR wallets; the first 10 USD and 3 EUR wallets may not overdraw.
std::vector<AccountSpec> account_specs() {
  std::vector<AccountSpec> specs = {{"bank_usd", "USD", false}, {"bank_eur", "EUR", false}};
  for (int i = 0; i < 40; ++i) specs.push_back({"wallet_usd_" + std::to_string(i), "USD", i < 10});
  for (int i = 0; i < 10; ++i) specs.push_back({"wallet_eur_" + std::to_string(i), "EUR", i < 3});
  return specs;
}

struct CurrencyAccounts {
  Currency currency;
  std::vector<std::string> all;
  std::vector<std::string> limited;
};

// One request a load client sent, and what came back.
struct SentRequest {
  std::vector<TransferEvent> events;
  std::vector<std::string> ids;
  int client = 0;
  PostOutcome outcome;
};

bool only_plain(const SentRequest& r) {
  for (const TransferEvent& e : r.events) {
    if ((e.flags & ~tf::kLinked) != 0) return false;
  }
  return true;
}

// What a load client starts a round with.
struct ClientPlan {
  std::vector<SentRequest> retries;         // unanswered plain requests of the last round
  std::vector<TransferEvent> holds_to_end;  // holds left pending by earlier rounds
};

// A load client: sends a random mix of requests over one keep-alive connection until the
// server goes away or `stop` is set, and records every request and its answer.
class LoadClient {
 public:
  LoadClient(int round, int index, uint64_t seed, const std::vector<CurrencyAccounts>* currencies,
             bool timed_holds, ClientPlan plan)
      : round_(round),
        index_(index),
        rng_(seed),
        currencies_(currencies),
        timed_holds_(timed_holds),
        plan_(std::move(plan)) {}

  void run(uint16_t port, const std::atomic<bool>& stop) {
    auto client = make_client(port);
    while (!stop.load()) {
      SentRequest r = next_request();
      r.client = index_;
      for (const TransferEvent& e : r.events) r.ids.push_back(e.id);
      r.outcome = post_events(*client, "/v1/transfers", transfers_body(r.events), r.ids);
      const bool answered = r.outcome.answered;
      if (answered && r.outcome.status == 200 && r.outcome.problem.empty()) remember_holds(r);
      sent_.push_back(std::move(r));
      if (!answered) break;  // the server is gone
      if (sent_.back().outcome.status == 503) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }

  std::vector<SentRequest>& sent() { return sent_; }

 private:
  SentRequest next_request() {
    SentRequest r;
    if (!plan_.retries.empty()) {
      r = std::move(plan_.retries.back());
      plan_.retries.pop_back();
      r.ids.clear();
      r.outcome = {};
      return r;
    }
    while (!plan_.holds_to_end.empty() && r.events.size() < kHoldsEndedPerRequestMax) {
      r.events.push_back(end_hold(plan_.holds_to_end.back()));
      plan_.holds_to_end.pop_back();
    }
    if (!r.events.empty()) return r;
    const int kind = pick(0, 99);
    if (kind < 25) {
      r.events.push_back(plain());
    } else if (kind < 50) {
      const int n = pick(10, 200);
      for (int i = 0; i < n; ++i) r.events.push_back(pick(0, 99) < 95 ? plain() : hold());
    } else if (kind < 70) {
      r.events = linked_pair();
    } else if (kind < 85) {
      r.events.push_back(hold());
    } else if (!own_holds_.empty()) {
      std::shuffle(own_holds_.begin(), own_holds_.end(), rng_);
      while (!own_holds_.empty() && r.events.size() < kOwnHoldsEndedPerRequestMax) {
        r.events.push_back(end_hold(own_holds_.back()));
        own_holds_.pop_back();
      }
    } else {
      r.events.push_back(plain());
    }
    return r;
  }

  // Holds this client may post or void later: acknowledged, and without a timeout (a timed
  // hold is left to expire, so that no post can race its deadline).
  void remember_holds(const SentRequest& r) {
    for (size_t i = 0; i < r.events.size(); ++i) {
      const TransferEvent& e = r.events[i];
      if ((e.flags & tf::kPending) != 0 && e.timeout_s == 0 && r.outcome.results[i] == "ok") {
        own_holds_.push_back(e);
      }
    }
  }

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  std::string next_id() {
    return "r" + std::to_string(round_) + "c" + std::to_string(index_) + "n" +
           std::to_string(seq_++);
  }

  const CurrencyAccounts& pick_currency() { return (*currencies_)[pick(0, 99) < 80 ? 0 : 1]; }

  TransferEvent plain() {
    const CurrencyAccounts& c = pick_currency();
    const int n = static_cast<int>(c.all.size());
    const int debit = pick(0, n - 1);
    const int credit = (debit + pick(1, n - 1)) % n;
    TransferEvent e;
    e.id = next_id();
    e.debit_account_id = c.all[static_cast<size_t>(debit)];
    e.credit_account_id = c.all[static_cast<size_t>(credit)];
    e.amount = pick(1, 1000);
    e.currency = c.currency;
    return e;
  }

  TransferEvent hold() {
    TransferEvent e = plain();
    e.flags = tf::kPending;
    if (timed_holds_ && pick(0, 1) == 0) e.timeout_s = 1;
    return e;
  }

  // A post (whole or partial) or a void of `h`; sometimes naming the hold's fields again.
  TransferEvent end_hold(const TransferEvent& h) {
    TransferEvent e;
    e.id = next_id();
    e.pending_id = h.id;
    e.flags = pick(0, 1) == 0 ? tf::kPostPending : tf::kVoidPending;
    if (e.flags == tf::kPostPending && pick(0, 1) == 0) {
      e.amount = pick(1, static_cast<int>(h.amount));
    }
    if (pick(0, 2) == 0) {
      e.debit_account_id = h.debit_account_id;
      e.credit_account_id = h.credit_account_id;
      e.currency = h.currency;
    }
    return e;
  }

  // Two plain transfers linked into one chain; one time in five the second overdraws a
  // limited wallet, so the whole chain must fail.
  std::vector<TransferEvent> linked_pair() {
    TransferEvent first = plain();
    first.flags = tf::kLinked;
    TransferEvent second = plain();
    if (pick(0, 4) == 0) {
      const CurrencyAccounts& c = pick_currency();
      second.currency = c.currency;
      second.debit_account_id =
          c.limited[static_cast<size_t>(pick(0, static_cast<int>(c.limited.size()) - 1))];
      second.credit_account_id = c.all[0];  // the bank, never a limited wallet
      second.amount = kOverdraftAmount;
    }
    return {first, second};
  }

  int round_;
  int index_;
  std::mt19937_64 rng_;
  const std::vector<CurrencyAccounts>* currencies_;
  bool timed_holds_;
  ClientPlan plan_;
  uint64_t seq_ = 0;
  std::vector<TransferEvent> own_holds_;
  std::vector<SentRequest> sent_;
};

// The test's model of the ledger, checked against the restarted keeld after every crash.
class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = test_seed();
    std::printf("crash test seed: %llu (KEEL_TEST_SEED=%llu replays it)\n",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    std::fflush(stdout);
    data_dir_ = dir_.path() / "data";
    rng_.seed(seed_);
  }

  void start() {
    const Status s = start_keeld(data_dir_, kKeeldConfig, &keeld_);
    ASSERT_TRUE(s.is_ok()) << s.message();
    client_ = make_client(keeld_->port());
  }

  void create_accounts_and_fund();
  void run_round(int round);
  void verify_journal_offline(engine::VerifyReport* report);
  void check_round(const std::vector<SentRequest>& requests, const engine::VerifyReport& report,
                   bool compare_hash);
  Status list_transfers(bool everything, std::map<std::string, StoredTransfer>* out);
  void check_sample(std::vector<std::string> ids);
  void record_existing(const StoredTransfer& t);
  // Reports a problem with one transfer or request; past kProblemsShownMax, only counts it.
  void problem(const std::string& text);
  void check_results(const std::vector<SentRequest>& requests,
                     const std::set<std::string>& existed_before);
  void check_balances_and_status(const engine::VerifyReport& report, bool compare_hash);
  void expect_only_open_holds_in_memory();
  void wait_until_no_timed_holds();
  ClientPlan plan_for(int client, const std::vector<SentRequest>& last_round,
                      std::vector<TransferEvent>* leftover);

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  testing::TempDir dir_;
  std::filesystem::path data_dir_;
  std::unique_ptr<testing::KeeldProcess> keeld_;
  std::unique_ptr<net::HttpClient> client_;
  std::vector<CurrencyAccounts> currencies_;
  std::vector<std::string> account_ids_;
  // Every transfer event ever sent, by id (a retry sends the same event again).
  std::unordered_map<std::string, TransferEvent> sent_;
  // Every transfer known to exist, as the server reported it at the last check.
  std::map<std::string, StoredTransfer> existing_;
  std::vector<SentRequest> last_round_;
  uint64_t acknowledged_ = 0;
  uint64_t rejected_ = 0;
  uint64_t unanswered_ = 0;
  uint64_t unanswered_applied_ = 0;  // durable, but the client never heard
  int hash_checks_ = 0;
  size_t problems_ = 0;
};

void CrashTest::create_accounts_and_fund() {
  std::vector<ledger::AccountEvent> accounts;
  std::vector<TransferEvent> funding;
  currencies_ = {{*Currency::from_code("USD"), {}, {}}, {*Currency::from_code("EUR"), {}, {}}};
  for (const AccountSpec& spec : account_specs()) {
    ledger::AccountEvent a;
    a.id = spec.id;
    a.currency = *Currency::from_code(spec.currency);
    a.flags = spec.limited ? ledger::account_flags::kDebitsMustNotExceedCredits : 0;
    accounts.push_back(a);
    account_ids_.push_back(spec.id);
    CurrencyAccounts& c = currencies_[a.currency == currencies_[0].currency ? 0 : 1];
    c.all.push_back(spec.id);
    if (!spec.limited) continue;
    c.limited.push_back(spec.id);
    TransferEvent f;
    f.id = "fund_" + spec.id;
    f.debit_account_id = c.all[0];
    f.credit_account_id = spec.id;
    f.amount = kFundingAmount;
    f.currency = a.currency;
    funding.push_back(f);
  }
  Status s = create_accounts(*client_, accounts);
  ASSERT_TRUE(s.is_ok()) << s.message();
  s = create_transfers(*client_, funding);
  ASSERT_TRUE(s.is_ok()) << s.message();
  for (const TransferEvent& f : funding) {
    sent_[f.id] = f;
    existing_[f.id] = expected_transfer(f, nullptr);
  }
}

ClientPlan CrashTest::plan_for(int client, const std::vector<SentRequest>& last_round,
                               std::vector<TransferEvent>* leftover) {
  ClientPlan plan;
  for (const SentRequest& r : last_round) {
    if (plan.retries.size() == kRetriesPerClientMax) break;
    if (r.client == client && !(r.outcome.answered && r.outcome.status == 200) && only_plain(r)) {
      plan.retries.push_back(r);
    }
  }
  while (!leftover->empty() && plan.holds_to_end.size() < kLeftoverHoldsPerClientMax) {
    plan.holds_to_end.push_back(leftover->back());
    leftover->pop_back();
  }
  return plan;
}

// One round: load from kClients clients, kill -9 at a random moment, verify the journal
// offline, restart, check.
void CrashTest::run_round(int round) {
  SCOPED_TRACE("round " + std::to_string(round));
  // Odd rounds create no timed holds, and every check waits for the timed holds to expire, so
  // in odd rounds no hold can expire between the crash and the check: the state hash after
  // restart must equal the offline replay's.
  const bool timed_holds = round % 2 == 0;
  std::vector<TransferEvent> leftover;
  for (const auto& [id, t] : existing_) {
    if (t.pending_state == "pending" && t.timeout_s == 0) leftover.push_back(sent_.at(id));
  }
  std::vector<std::unique_ptr<LoadClient>> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(std::make_unique<LoadClient>(round, c, rng_(), &currencies_, timed_holds,
                                                   plan_for(c, last_round_, &leftover)));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  const uint16_t port = keeld_->port();
  for (auto& c : clients) threads.emplace_back([&c, port, &stop] { c->run(port, stop); });
  const int kill_after_ms =
      std::uniform_int_distribution<int>(kKillAfterMsMin, kKillAfterMsMax)(rng_);
  // Every third round also asks for a snapshot at a random moment: the kill may land while it
  // is being written. (keeld counts events towards its own snapshots only since it started.)
  if (round % 3 == 1) {
    const int snapshot_after_ms = std::uniform_int_distribution<int>(0, kill_after_ms)(rng_);
    threads.emplace_back([port, snapshot_after_ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(snapshot_after_ms));
      net::HttpResponse r;
      (void)make_client(port)->post("/v1/admin/snapshot", "", &r);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
  const int code = keeld_->kill9();
  stop.store(true);
  for (auto& t : threads) t.join();
  ASSERT_EQ(code, 128 + SIGKILL) << "keeld ended on its own before the kill";

  std::vector<SentRequest> requests;
  for (auto& c : clients) {
    for (SentRequest& r : c->sent()) requests.push_back(std::move(r));
  }
  for (const SentRequest& r : requests) {
    for (const TransferEvent& e : r.events) sent_[e.id] = e;
  }
  engine::VerifyReport report;
  ASSERT_NO_FATAL_FAILURE(verify_journal_offline(&report));
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(check_round(requests, report, !timed_holds));
  if (problems_ > kProblemsShownMax) {
    ADD_FAILURE() << problems_ << " problems in all, the first " << kProblemsShownMax << " shown";
  }
  std::printf(
      "round %2d: killed after %3d ms, %3zu requests; journal: %llu segments, snapshot "
      "at %llu, %llu records replayed, torn tail %llu bytes; %llu transfers\n",
      round, kill_after_ms, requests.size(),
      static_cast<unsigned long long>(report.journal.segments),
      static_cast<unsigned long long>(report.snapshot_seq),
      static_cast<unsigned long long>(report.records_replayed),
      static_cast<unsigned long long>(report.journal.torn_tail_bytes),
      static_cast<unsigned long long>(report.counts.transfers));
  last_round_ = std::move(requests);
}

void CrashTest::verify_journal_offline(engine::VerifyReport* report) {
  const Status s = engine::verify_data_dir(data_dir_, report);
  ASSERT_TRUE(s.is_ok()) << "verify after kill -9: " << s.message();
  ASSERT_TRUE(report->invariants.ok) << report->invariants.problem;
}

void CrashTest::problem(const std::string& text) {
  if (++problems_ <= kProblemsShownMax) ADD_FAILURE() << text;
}

void CrashTest::record_existing(const StoredTransfer& t) {
  const auto sent = sent_.find(t.id);
  if (sent == sent_.end()) {
    problem("keeld holds transfer " + t.id + ", which no client sent");
    return;
  }
  const TransferEvent& e = sent->second;
  const TransferEvent* hold = e.pending_id.empty() ? nullptr : &sent_.at(e.pending_id);
  const std::string diff = transfer_mismatch(expected_transfer(e, hold), t);
  if (!diff.empty()) problem("transfer " + t.id + " is not stored as sent:" + diff);
  existing_[t.id] = t;
}

Status CrashTest::list_transfers(bool everything, std::map<std::string, StoredTransfer>* out) {
  const auto seen = [this, everything](const std::string& id) {
    return !everything && existing_.contains(id);
  };
  std::vector<std::vector<StoredTransfer>> found(kFetchConnections);
  std::vector<Status> status(kFetchConnections);
  std::vector<std::thread> threads;
  for (size_t c = 0; c < kFetchConnections; ++c) {
    threads.emplace_back([&, c] {
      auto client = make_client(keeld_->port());
      for (size_t i = c; i < account_ids_.size() && status[c].is_ok(); i += kFetchConnections) {
        status[c] = list_new_transfers(*client, account_ids_[i], seen, &found[c]);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t c = 0; c < kFetchConnections; ++c) {
    if (!status[c].is_ok()) return status[c];
    for (StoredTransfer& t : found[c]) (*out)[t.id] = std::move(t);
  }
  return Status::ok();
}

// GETs a random sample of `ids` one by one: each must agree with what the listing showed.
void CrashTest::check_sample(std::vector<std::string> ids) {
  std::shuffle(ids.begin(), ids.end(), rng_);
  ids.resize(std::min(ids.size(), kSampledPerRound));
  TransferLookup fetched;
  const Status s = get_transfers(keeld_->port(), ids, kFetchConnections, &fetched);
  ASSERT_TRUE(s.is_ok()) << s.message();
  for (const auto& [id, t] : fetched) {
    const auto listed = existing_.find(id);
    if (t.has_value() != (listed != existing_.end())) {
      problem("GET /v1/transfers/" + id + " disagrees with the account listings");
    }
    if (!t || listed == existing_.end()) continue;
    const std::string diff = transfer_mismatch(listed->second, *t);
    if (!diff.empty() || listed->second.pending_state != t->pending_state) {
      problem("GET /v1/transfers/" + id + " differs from the listing:" + diff + " pending_state " +
              t->pending_state + " vs " + listed->second.pending_state);
    }
  }
}

void CrashTest::check_round(const std::vector<SentRequest>& requests,
                            const engine::VerifyReport& report, bool compare_hash) {
  std::set<std::string> existed_before;
  std::vector<std::string> sent_ids;
  for (const SentRequest& r : requests) {
    for (const std::string& id : r.ids) {
      sent_ids.push_back(id);
      if (existing_.contains(id)) existed_before.insert(id);
    }
  }
  // Holds with a timeout expire on their own; once none is left, nothing changes under the
  // check.
  ASSERT_NO_FATAL_FAILURE(wait_until_no_timed_holds());
  std::map<std::string, StoredTransfer> fresh;
  Status s = list_transfers(false, &fresh);
  ASSERT_TRUE(s.is_ok()) << s.message();
  // Holds still pending at the last check may have been posted, voided or expired since.
  std::vector<std::string> live_holds;
  for (const auto& [id, t] : existing_) {
    if (t.pending_state == "pending" && !fresh.contains(id)) live_holds.push_back(id);
  }
  TransferLookup refreshed;
  s = get_transfers(keeld_->port(), live_holds, kFetchConnections, &refreshed);
  ASSERT_TRUE(s.is_ok()) << s.message();
  for (const auto& [id, t] : refreshed) {
    if (t) {
      record_existing(*t);
    } else {
      problem("hold " + id + " existed at an earlier check and is now missing");
    }
  }
  for (const auto& [id, t] : fresh) record_existing(t);
  ASSERT_NO_FATAL_FAILURE(check_sample(sent_ids));
  check_results(requests, existed_before);
  // A linked chain is applied whole or not at all, answered or not.
  for (const SentRequest& r : requests) {
    for (const auto& chain : chains_of(r.events)) {
      const bool first = existing_.contains(r.ids[chain.front()]);
      for (size_t i : chain) {
        if (existing_.contains(r.ids[i]) != first) {
          problem("linked chain " + r.ids[chain.front()] + ".." + r.ids[chain.back()] +
                  " is half applied (" + r.ids[i] + ")");
        }
      }
    }
  }
  ASSERT_NO_FATAL_FAILURE(check_balances_and_status(report, compare_hash));
}

// Every answered event: its result is one this workload can produce; an acknowledged event
// exists, a refused one does not; a retry of an event that existed answers `exists`.
void CrashTest::check_results(const std::vector<SentRequest>& requests,
                              const std::set<std::string>& existed_before) {
  static const std::set<std::string> kExpected = {"ok", "exists", "exceeds_credits",
                                                  "linked_event_failed"};
  for (const SentRequest& r : requests) {
    const PostOutcome& o = r.outcome;
    if (!o.answered) {
      unanswered_ += r.ids.size();
      for (const std::string& id : r.ids) unanswered_applied_ += existing_.contains(id) ? 1 : 0;
      continue;
    }
    if (o.status != 200 && o.status != 503) {
      problem("HTTP " + std::to_string(o.status) + " for the request of " + r.ids[0]);
    }
    if (o.status != 200) continue;
    if (!o.problem.empty()) {
      problem("malformed answer for " + r.ids[0] + ": " + o.problem);
      continue;
    }
    for (size_t i = 0; i < r.ids.size(); ++i) {
      const std::string& id = r.ids[i];
      const std::string& result = o.results[i];
      if (!kExpected.contains(result)) problem(id + " answered " + result);
      if (is_acknowledged(result)) {
        ++acknowledged_;
        if (!existing_.contains(id)) {
          problem("acknowledged transfer " + id + " (" + result + ") is missing after kill -9");
        }
      } else {
        ++rejected_;
        if (existing_.contains(id))
          problem("transfer " + id + " was answered " + result + " but exists");
      }
      if (existed_before.contains(id) && result != "exists") {
        problem("retry of " + id + ", which existed before, answered " + result);
      }
    }
  }
}

// Every account's balances equal the sum of the effects of the transfers that exist; keeld
// counts exactly those transfers, the same as the offline replay of its journal did, and its
// invariants hold. With `compare_hash`, no hold can have expired since the replay, so the state
// hash must equal the replay's.
void CrashTest::check_balances_and_status(const engine::VerifyReport& report, bool compare_hash) {
  std::map<std::string, ledger::Balances> expected;
  for (const auto& [id, t] : existing_) add_effect(t, &expected);
  for (const std::string& id : account_ids_) {
    ledger::Balances got;
    const Status s = get_balances(*client_, id, &got);
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_EQ(got, expected[id]) << "account " << id << ": got " << balances_text(got)
                                 << "; the transfers that exist sum to "
                                 << balances_text(expected[id]);
  }
  json::object status;
  const Status s = get_full_status(*client_, &status);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_TRUE(status.at("invariants_ok").as_bool()) << json::serialize(status);
  const uint64_t transfers = status.at("counts").at("transfers").to_number<uint64_t>();
  EXPECT_EQ(transfers, existing_.size())
      << "keeld holds transfers the clients never sent, or the listings missed some";
  EXPECT_EQ(transfers, report.counts.transfers)
      << "the restarted keeld does not hold what the offline replay of its journal holds";
  EXPECT_EQ(status.at("counts").at("accounts").to_number<uint64_t>(), account_ids_.size());
  if (compare_hash) {
    ++hash_checks_;
    EXPECT_EQ(std::string(status.at("state_hash").as_string()), api::hash_to_hex(report.state_hash))
        << "the restarted keeld's state differs from the offline replay of the same journal";
  }
}

// Memory is bounded by what is open (docs/storage.md, "Tiers"): once the history tier has
// caught up, the restarted keeld holds the holds still pending and no other transfer; every
// other one is in the store.
void CrashTest::expect_only_open_holds_in_memory() {
  uint64_t open = 0;
  for (const auto& [id, t] : existing_) open += t.pending_state == "pending" ? 1 : 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  json::object status;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(get_full_status(*client_, &status).is_ok());
    const json::object& counts = status.at("counts").as_object();
    const uint64_t in_memory = counts.at("transfers_in_memory").to_number<uint64_t>();
    const uint64_t queued = status.at("history").at("queued").to_number<uint64_t>();
    if (in_memory == open && queued == 0) {
      EXPECT_LT(in_memory, counts.at("transfers").to_number<uint64_t>());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << open << " holds are open, and memory still holds more transfers than those: "
         << json::serialize(status);
}

void CrashTest::wait_until_no_timed_holds() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    json::object status;
    ASSERT_TRUE(get_full_status(*client_, &status).is_ok());
    if (status.at("counts").at("pending_with_timeout").to_number<uint64_t>() == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << "holds with a 1 s timeout did not expire within 30 s";
}

TEST_F(CrashTest, AcknowledgedTransfersSurviveRepeatedKill9UnderLoad) {
  SCOPED_TRACE("seed " + std::to_string(seed_) + " (KEEL_TEST_SEED to replay)");
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(create_accounts_and_fund());
  for (int round = 0; round < kRounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(run_round(round));
    if (HasFailure()) return;
  }
  // Once more, everything: no transfer that existed at its round's check has gone since.
  ASSERT_NO_FATAL_FAILURE(wait_until_no_timed_holds());
  std::map<std::string, StoredTransfer> all;
  const Status s = list_transfers(true, &all);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(all.size(), existing_.size());
  for (const auto& [id, t] : existing_) {
    if (!all.contains(id)) problem("transfer " + id + " is gone");
  }
  for (const auto& [id, t] : all) record_existing(t);
  std::vector<std::string> sent_ids;
  for (const auto& [id, e] : sent_) sent_ids.push_back(id);
  ASSERT_NO_FATAL_FAILURE(check_sample(sent_ids));
  if (problems_ > kProblemsShownMax) {
    ADD_FAILURE() << problems_ << " problems in all, the first " << kProblemsShownMax << " shown";
  }
  // A clean stop, then the same state from the journal: offline and in a new process.
  json::object before;
  ASSERT_TRUE(get_full_status(*client_, &before).is_ok());
  client_.reset();
  EXPECT_EQ(keeld_->stop(), 0);
  engine::VerifyReport report;
  ASSERT_NO_FATAL_FAILURE(verify_journal_offline(&report));
  EXPECT_EQ(std::string(before.at("state_hash").as_string()), api::hash_to_hex(report.state_hash));
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(check_balances_and_status(report, true));
  ASSERT_NO_FATAL_FAILURE(expect_only_open_holds_in_memory());
  std::printf(
      "%d rounds: %llu events acknowledged, %llu refused, %llu unanswered (%llu of them "
      "applied), %zu transfers, %d state hash checks\n",
      kRounds, static_cast<unsigned long long>(acknowledged_),
      static_cast<unsigned long long>(rejected_), static_cast<unsigned long long>(unanswered_),
      static_cast<unsigned long long>(unanswered_applied_), existing_.size(), hash_checks_);
  EXPECT_GT(acknowledged_, 0u);
  EXPECT_EQ(keeld_->stop(), 0);
}

}  // namespace
}  // namespace keel::durability
