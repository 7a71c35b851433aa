// Payments at rest in the history store (docs/storage.md, "Tiers"): a core whose payments move
// to a store must answer every command, read and state hash exactly as one that keeps them all
// in memory, including after a restart from its snapshot and a replay from a snapshot older than
// the records the store holds.
#include <gtest/gtest.h>

#include <deque>
#include <random>

#include "ledger/ledger.h"
#include "payments/core.h"
#include "payments/map_history_test_util.h"
#include "payments/payment_history.h"

namespace keel::payments {
namespace {

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
constexpr size_t kPaymentIds = 150;
constexpr size_t kRefundIds = 30;
constexpr size_t kFlowIds = 90;  // top-ups, payouts and wallet transfers share them

std::string payment_id(size_t i) { return "pay" + std::to_string(i); }
std::string refund_id(size_t i) { return "re" + std::to_string(i); }
std::string flow_id(size_t i) { return "fl" + std::to_string(i); }

// One step of a run: a command, or a tick, at `now`.
struct Step {
  std::optional<Command> command;
  Timestamp now = 0;
};

// A core and its ledger, as the engine's writer drives them.
struct Twin {
  ledger::Ledger ledger;
  PaymentsCore core;
  Timestamp clock = 0;

  ApplyOutcome run(const Step& s) {
    clock = std::max(clock, s.now);
    Timestamp c = clock;
    ApplyOutcome out =
        s.command ? core.apply(*s.command, clock, ledger, &c) : core.tick(clock, ledger, &c);
    clock = c;
    EXPECT_EQ(out.postings_rejected, 0u);
    return out;
  }
  [[nodiscard]] std::string full() const {
    std::string out;
    const Status s = core.encode_full(&out);
    EXPECT_TRUE(s.is_ok()) << s.message();
    return out;
  }
  [[nodiscard]] std::string read(const Query& q, const KvReader* history) const {
    QueryResult r = core.query(q, ledger);
    if (history != nullptr) {
      const Status s = PaymentsCore::finish_query(*history, &r);
      EXPECT_TRUE(s.is_ok()) << s.message();
    }
    EXPECT_FALSE(r.payments_read || r.flows_read) << "a read left unfinished";
    return r.found ? r.body : "<not found>";
  }
};

// Commands drawn from the whole space the payments core takes: ids that collide (payments,
// refunds, across kinds), amounts from 1 to the largest, currencies of every exponent, routed
// and pinned confirms, traceparents, every PSP answer and report, deadlines.
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  // `open`: the attempts open in the run so far (most PSP answers are about one of them).
  Step next(Timestamp* now, const std::vector<ResolveRequest>& open) {
    open_ = &open;
    *now += pick(25) == 0 ? pick_time() : kNanosPerSecond;
    Step s;
    s.now = *now;
    switch (pick(15)) {
      case 0:
      case 1:
        s.command = create_payment();
        break;
      case 2:
      case 3:
        s.command = confirm();
        break;
      case 4:
      case 5:
        s.command = result();
        break;
      case 6:
        s.command = cmd::CapturePayment{pay(), pick(3) == 0 ? int64_t{1} : int64_t{0}};
        break;
      case 7:
        s.command = cmd::CancelPayment{pay()};
        break;
      case 8:
      case 9:
        s.command = refund();
        break;
      case 10:
        s.command = report();
        break;
      case 11:
      case 12:
        s.command = create_flow();
        break;
      case 13:
        s.command = cmd::CreateWalletTransfer{flow_id(pick(kFlowIds)), customer(), customer(),
                                              amount(), currency()};
        break;
      default:
        break;  // a tick
    }
    return s;
  }

 private:
  uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  Timestamp pick_time() {
    constexpr Timestamp kChoices[] = {kNanosPerSecond, 31 * 60 * kNanosPerSecond,
                                      25 * 3600 * kNanosPerSecond, 8 * 24 * 3600 * kNanosPerSecond};
    return kChoices[pick(4)];
  }
  // Mostly a payment created lately (so that many go all the way), else any.
  std::string pay() {
    if (!recent_.empty() && pick(4) != 0) return recent_[pick(recent_.size())];
    return payment_id(pick(kPaymentIds));
  }
  std::string attempt() {
    if (!open_->empty() && pick(4) != 0) return (*open_)[pick(open_->size())].attempt_id;
    const uint64_t k = pick(6);
    const std::string owner = k == 0  ? refund_id(pick(kRefundIds))
                              : k < 3 ? flow_id(pick(kFlowIds))
                                      : pay();
    return owner + "_a" + std::to_string(1 + pick(3));
  }
  std::string customer() { return pick(2) == 0 ? "cus_1" : "cus_2"; }
  int64_t amount() {
    constexpr int64_t kAmounts[] = {1, 2, 99, 1250, 100'000'000, 999'999'999'999'999};
    return kAmounts[pick(6)];
  }
  Currency currency() {
    constexpr const char* kCurrencies[] = {"USD", "JPY", "BHD"};
    return *Currency::from_code(kCurrencies[pick(3)]);
  }
  // A top-up (mostly) or a payout: its funds come from top-ups that succeeded.
  Command create_flow() {
    const bool topup = pick(3) != 0;
    cmd::CreateFlow f{flow_id(pick(kFlowIds)),
                      customer(),
                      amount(),
                      currency(),
                      "cardco",
                      topup ? InstrumentKind::card_token : InstrumentKind::iban,
                      topup ? "tok_visa" : "DE89370400440532013000"};
    Command c = topup ? Command(cmd::CreateTopup{f}) : Command(cmd::CreatePayout{f});
    if (pick(3) == 0) c.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    return c;
  }
  Command create_payment() {
    cmd::CreatePayment c;
    c.id = payment_id(pick(kPaymentIds));
    recent_.push_back(c.id);
    if (recent_.size() > 8) recent_.pop_front();
    constexpr int64_t kAmounts[] = {1, 2, 99, 1250, 100'000'000, 999'999'999'999'999};
    c.amount = kAmounts[pick(6)];
    constexpr const char* kCurrencies[] = {"USD", "JPY", "BHD"};
    c.currency = *Currency::from_code(kCurrencies[pick(3)]);
    c.merchant_id = "mch_1";
    if (pick(8) == 0) {
      c.source_wallet = true;
      c.customer_id = "cus_1";
    } else {
      c.instrument = "tok_visa";
      c.capture_manual = pick(3) == 0;
    }
    return c;
  }
  Command confirm() {
    Command c = cmd::ConfirmPayment{pay(), ""};
    if (pick(2) == 0) {
      c.routed = true;
      c.route.kind = routing::DecisionKind::routed;
      c.route.channel = "cardco";
      c.route.candidates.push_back({"cardco", 900'000, 950'000, 50'000, 120, 10});
    } else {
      c.as<cmd::ConfirmPayment>()->channel = "cardco";
    }
    if (pick(2) == 0) c.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    return c;
  }
  Command result() {
    cmd::AttemptResult c;
    c.attempt_id = attempt();
    constexpr AttemptStatus kStatuses[] = {AttemptStatus::approved, AttemptStatus::declined_hard,
                                           AttemptStatus::declined_soft, AttemptStatus::retryable,
                                           AttemptStatus::unknown};
    c.result.status = kStatuses[pick(5)];
    c.result.captured = pick(2) == 0;
    c.result.psp_reference = "psp_" + c.attempt_id;
    c.result.fee = static_cast<int64_t>(pick(3));
    return c;
  }
  Command refund() {
    Command c = cmd::CreateRefund{pick(6) == 0 ? pay() : refund_id(pick(kRefundIds)), pay(),
                                  pick(2) == 0 ? int64_t{0} : int64_t{1}};
    if (pick(3) == 0) c.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    return c;
  }
  Command report() {
    cmd::OperationStatus c;
    c.channel = "cardco";
    c.reference = attempt();
    constexpr OperationState kStates[] = {OperationState::not_found,     OperationState::authorized,
                                          OperationState::captured,      OperationState::voided,
                                          OperationState::declined_hard, OperationState::refunded};
    c.state = kStates[pick(6)];
    c.source = ResultSource::status_query;
    return c;
  }

  std::mt19937_64 rng_;
  const std::vector<ResolveRequest>* open_ = nullptr;
  std::deque<std::string> recent_;
};

std::vector<Step> setup_steps(Timestamp* now) {
  std::vector<Step> steps;
  for (Command c :
       {Command(cmd::CreateMerchant{"mch_1", "shop", "", ""}),
        Command(cmd::CreateCustomer{"cus_1", ""}), Command(cmd::CreateCustomer{"cus_2", ""})}) {
    *now += kNanosPerSecond;
    steps.push_back({std::move(c), *now});
  }
  return steps;
}

void expect_same_reads(const Twin& memory, const Twin& tiered, const MapHistory& store) {
  for (size_t i = 0; i < kPaymentIds; ++i) {
    Query q;
    q.id = payment_id(i);
    EXPECT_EQ(memory.read(q, nullptr), tiered.read(q, &store)) << q.id;
  }
  for (size_t i = 0; i < kRefundIds; ++i) {
    Query q;
    q.kind = QueryKind::get_refund;
    q.id = refund_id(i);
    EXPECT_EQ(memory.read(q, nullptr), tiered.read(q, &store)) << q.id;
  }
  // Unfiltered lists read the records; a merchant's or a customer's read that index.
  const std::pair<const char*, const char*> kOwners[] = {
      {"", ""}, {"mch_1", ""}, {"mch_2", ""}, {"", "cus_1"}, {"mch_1", "cus_1"}, {"", "cus_2"}};
  for (const char* status : {"", "succeeded", "failed", "canceled", "requires_capture"}) {
    for (const size_t limit : {size_t{1}, size_t{3}, size_t{100}}) {
      for (const std::string& after : {std::string(), payment_id(1), payment_id(17)}) {
        for (const auto& [merchant, customer] : kOwners) {
          Query q;
          q.kind = QueryKind::list_payments;
          q.status = status;
          q.limit = limit;
          q.starting_after = after;
          q.merchant_id = merchant;
          q.customer_id = customer;
          EXPECT_EQ(memory.read(q, nullptr), tiered.read(q, &store))
              << "status " << status << " limit " << limit << " after " << after << " merchant "
              << merchant << " customer " << customer;
        }
      }
    }
  }
  const QueryKind kFlowReads[] = {QueryKind::get_topup, QueryKind::get_payout,
                                  QueryKind::get_wallet_transfer};
  const QueryKind kFlowLists[] = {QueryKind::list_topups, QueryKind::list_payouts,
                                  QueryKind::list_wallet_transfers};
  for (size_t i = 0; i < kFlowIds; ++i) {
    for (const QueryKind kind : kFlowReads) {
      Query q;
      q.kind = kind;
      q.id = flow_id(i);
      EXPECT_EQ(memory.read(q, nullptr), tiered.read(q, &store)) << q.id;
    }
  }
  // Every page of every list, following cursors, for a few filters and page sizes; and cursors
  // from anywhere.
  for (const QueryKind kind : kFlowLists) {
    for (const char* status : {"", "processing", "succeeded", "failed"}) {
      for (const char* customer : {"", "cus_1", "cus_2"}) {
        for (const size_t limit : {size_t{2}, size_t{7}, size_t{100}}) {
          Query q;
          q.kind = kind;
          q.status = status;
          q.customer_id = customer;
          q.limit = limit;
          for (int page = 0; page < 200; ++page) {
            const std::string want = memory.read(q, nullptr);
            ASSERT_EQ(want, tiered.read(q, &store))
                << static_cast<int>(kind) << " " << status << " " << customer << " " << limit;
            const size_t last = want.rfind(R"({"id":")");
            if (want.find(R"("has_more":true)") == std::string::npos || last == std::string::npos) {
              break;
            }
            q.starting_after = want.substr(last + 7, want.find('"', last + 7) - last - 7);
          }
        }
      }
    }
    for (size_t i = 0; i < kFlowIds; i += 7) {
      Query q;
      q.kind = kind;
      q.limit = 3;
      q.starting_after = flow_id(i);
      q.created_gte = kT0 + 60 * kNanosPerSecond;
      EXPECT_EQ(memory.read(q, nullptr), tiered.read(q, &store)) << q.starting_after;
    }
  }
}

// Drives both twins through `steps`; the tiered one moves its payments at rest to `store`,
// making each batch durable a few steps later (or at once), and restarts from its own snapshot
// now and then. Snapshots of the tiered twin are kept by the step after which they were taken.
struct TwinRun {
  Twin memory;
  std::unique_ptr<Twin> tiered = std::make_unique<Twin>();
  MapHistory store;
  std::deque<PaymentsCore::HistoryRecords> in_flight;               // taken, not yet durable
  std::map<size_t, std::pair<std::string, std::string>> snapshots;  // step -> (core, ledger)
  uint64_t moved = 0;
  uint64_t flows_moved = 0;
  uint64_t brought_back = 0;
  uint64_t flows_brought_back = 0;
  size_t most_in_memory = 0;
  std::vector<std::string> replies;  // of each step (the body, or the error's message)
  uint64_t seq = 0;                  // steps that changed the state (the journal's records)
  std::vector<uint64_t> seq_before;  // of each step

  TwinRun() { tiered->core.set_history(&store); }

  void write_front() {
    for (auto& [k, v] : in_flight.front().puts) store.records.insert_or_assign(k, v);
    moved += in_flight.front().payments.size();
    flows_moved += in_flight.front().flows.size();
    tiered->core.make_cold(in_flight.front());
    in_flight.pop_front();
  }

  void restart() {
    // The mover may have written what was handed over; the new core does not know it did.
    for (auto& batch : in_flight) {
      for (auto& [k, v] : batch.puts) store.records.insert_or_assign(k, v);
    }
    in_flight.clear();
    std::string core_bytes;
    std::string ledger_bytes;
    tiered->core.encode(&core_bytes);
    tiered->ledger.encode(&ledger_bytes);
    auto next = std::make_unique<Twin>();
    ASSERT_TRUE(PaymentsCore::decode(core_bytes, {}, &next->core).is_ok());
    ASSERT_TRUE(ledger::Ledger::decode(ledger_bytes, {}, nullptr, &next->ledger).is_ok());
    next->core.set_history(&store);
    next->clock = tiered->clock;
    tiered = std::move(next);
  }

  void step(size_t i, const Step& s, std::mt19937_64& rng) {
    const size_t in_memory_before = tiered->core.counts().payments_in_memory;
    const size_t flows_before = tiered->core.counts().wallet_flows_in_memory;
    const ApplyOutcome a = memory.run(s);
    const ApplyOutcome b = tiered->run(s);
    replies.push_back(a.reply.ok() ? a.reply.body : a.reply.error_message);
    ASSERT_EQ(a.reply.error, b.reply.error)
        << "step " << i << " kind " << (s.command ? static_cast<int>(s.command->kind()) : 0) << ": "
        << a.reply.error_message << " / " << b.reply.error_message;
    ASSERT_EQ(a.reply.body, b.reply.body) << "step " << i;
    ASSERT_EQ(a.changed, b.changed) << "step " << i;
    ASSERT_EQ(a.calls.size(), b.calls.size()) << "step " << i;
    ASSERT_EQ(a.rejected.size(), b.rejected.size()) << "step " << i;
    if (tiered->core.counts().payments_in_memory > in_memory_before && s.command &&
        !s.command->as<cmd::CreatePayment>()) {
      ++brought_back;
    }
    if (tiered->core.counts().wallet_flows_in_memory > flows_before && s.command &&
        (s.command->as<cmd::AttemptResult>() || s.command->as<cmd::OperationStatus>())) {
      ++flows_brought_back;
    }
    // Versions are journal positions: a command that changed nothing is not journaled, so the
    // same payment may be taken twice at one version.
    seq_before.push_back(seq);
    if (a.changed) ++seq;
    // The store may report a batch durable after a command reached what it holds and before
    // the next hand-out: memory must keep what changed since.
    if (!in_flight.empty() && std::uniform_int_distribution<int>(0, 3)(rng) == 0) write_front();
    PaymentsCore::HistoryRecords records;
    tiered->core.take_final(&records, seq);
    in_flight.push_back(std::move(records));
    while (!in_flight.empty() && std::uniform_int_distribution<int>(0, 2)(rng) != 0) {
      write_front();
    }
    most_in_memory = std::max(most_in_memory, tiered->core.counts().payments_in_memory);
    if (i % 16 == 0) {
      ASSERT_TRUE(memory.full() == tiered->full()) << "step " << i;
    }
    ASSERT_EQ(memory.core.counts().payments, tiered->core.counts().payments) << "step " << i;
    ASSERT_EQ(memory.core.counts().wallet_flows, tiered->core.counts().wallet_flows)
        << "step " << i;
  }
};

TEST(PaymentHistory, EveryAnswerAndTheStateHashAreTheSameWhereverThePaymentsAre) {
  for (const uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed * 7919);
    Generator gen(seed);
    Timestamp now = kT0;
    TwinRun run;
    std::vector<Step> steps = setup_steps(&now);
    const size_t total = 1500 + steps.size();
    for (size_t i = 0; i < total; ++i) {
      if (i >= steps.size())
        steps.push_back(gen.next(&now, run.memory.core.outstanding_attempts()));
      run.step(i + 1, steps[i], rng);
      if (::testing::Test::HasFatalFailure()) return;
      if (i % 97 == 96) run.restart();
      if (i % 150 == 0) expect_same_reads(run.memory, *run.tiered, run.store);
    }
    while (!run.in_flight.empty()) run.write_front();
    EXPECT_TRUE(run.memory.full() == run.tiered->full());
    expect_same_reads(run.memory, *run.tiered, run.store);
    // Payments did move, and came back for refunds and reports.
    EXPECT_GT(run.moved, 100u);
    EXPECT_GT(run.brought_back, 5u);
    EXPECT_LT(run.tiered->core.counts().payments_in_memory, run.memory.core.counts().payments);
    // Wallet flows too, and PSP reports that contradict a settled one brought it back.
    EXPECT_GT(run.flows_moved, 30u);
    EXPECT_GT(run.flows_brought_back, 0u);
    EXPECT_LT(run.tiered->core.counts().wallet_flows_in_memory,
              run.memory.core.counts().wallet_flows);
  }
}

// Recovery replays the journal from a snapshot older than records the store already holds (a
// payment refunded after the snapshot was written again at rest): each replayed command must
// read the payment as it stood then. Without versions it would see the refund twice.
TEST(PaymentHistory, AReplayFromAnOlderSnapshotReadsEachPaymentAsItStoodThen) {
  int diverged_unversioned = 0;
  for (const uint64_t seed : {11u, 12u, 13u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Generator gen(seed);
    Timestamp now = kT0;
    TwinRun run;
    std::vector<Step> steps = setup_steps(&now);
    const size_t total = 1200 + steps.size();
    const size_t snapshot_after = 400;
    std::string core_bytes;
    std::string ledger_bytes;
    Timestamp clock_then = 0;
    for (size_t i = 0; i < total; ++i) {
      if (i >= steps.size())
        steps.push_back(gen.next(&now, run.memory.core.outstanding_attempts()));
      run.step(i + 1, steps[i], rng);
      if (::testing::Test::HasFatalFailure()) return;
      if (i + 1 == snapshot_after) {
        run.tiered->core.encode(&core_bytes);
        run.tiered->ledger.encode(&ledger_bytes);
        clock_then = run.tiered->clock;
      }
    }
    while (!run.in_flight.empty()) run.write_front();

    // Whether a replay answers every command as the run did and ends in the same state.
    const auto replay_agrees = [&](bool versioned) {
      Twin replayed;
      EXPECT_TRUE(PaymentsCore::decode(core_bytes, {}, &replayed.core).is_ok());
      EXPECT_TRUE(ledger::Ledger::decode(ledger_bytes, {}, nullptr, &replayed.ledger).is_ok());
      replayed.core.set_history(&run.store);
      replayed.clock = clock_then;
      bool same = true;
      for (size_t i = snapshot_after; i < steps.size(); ++i) {
        replayed.core.set_history_horizon(versioned ? run.seq_before[i] : payment_history::kNewest);
        const ApplyOutcome out = replayed.run(steps[i]);
        same =
            same && (out.reply.ok() ? out.reply.body : out.reply.error_message) == run.replies[i];
      }
      replayed.core.set_history_horizon(payment_history::kNewest);
      std::string want_ledger;
      std::string got_ledger;
      run.memory.ledger.encode(&want_ledger);
      replayed.ledger.encode(&got_ledger);
      return same && replayed.full() == run.memory.full() && got_ledger == want_ledger;
    };
    EXPECT_TRUE(replay_agrees(true));
    if (!replay_agrees(false)) ++diverged_unversioned;
  }
  // The test can tell: reading the newest records instead diverges.
  EXPECT_GT(diverged_unversioned, 0);
}

// A flow whose record the store's writer wrote while the core still holds it as handed over
// (taken, not yet made cold) is listed once: memory stands for it. Before, a list read off the
// writer in that window showed the flow twice (found by PersonalData.Sealed... under load).
TEST(PaymentHistory, AFlowWrittenToTheStoreButNotYetMadeColdIsListedOnce) {
  MapHistory store;
  Twin t;
  t.core.set_history(&store);
  const auto run = [&](Command c) { return t.run({std::move(c), t.clock + kNanosPerSecond}); };
  ASSERT_TRUE(run(cmd::CreateCustomer{"cus_1", ""}).reply.ok());
  const auto topup = [&](const std::string& id, uint64_t version, bool made_cold) {
    const ApplyOutcome sent =
        run(cmd::CreateTopup{{id, "cus_1", 500, *Currency::from_code("USD"), "cardco",
                              InstrumentKind::card_token, "tok_visa"}});
    ASSERT_EQ(sent.calls.size(), 1u);
    cmd::AttemptResult r;
    r.attempt_id = sent.calls[0].attempt_id;
    r.result.status = AttemptStatus::approved;
    ASSERT_TRUE(run(r).reply.ok());
    PaymentsCore::HistoryRecords records;
    t.core.take_final(&records, version);
    ASSERT_EQ(records.flows.size(), 1u);
    for (auto& [k, v] : records.puts) store.records.insert_or_assign(k, v);
    if (made_cold) t.core.make_cold(records);
  };
  topup("tu_1", 1, true);   // at rest: the list reads the store from now on
  topup("tu_2", 2, false);  // written, the writer not yet told
  Query q;
  q.kind = QueryKind::list_topups;
  q.limit = 10;
  for (const std::string customer : {"", "cus_1"}) {
    q.customer_id = customer;
    const std::string page = t.read(q, &store);
    size_t listed = 0;
    for (size_t at = page.find(R"("id":"tu_2")"); at != std::string::npos;
         at = page.find(R"("id":"tu_2")", at + 1)) {
      ++listed;
    }
    EXPECT_EQ(listed, 1u) << page;
    EXPECT_NE(page.find(R"("id":"tu_1")"), std::string::npos) << page;
  }
}

TEST(PaymentHistory, AStoreRecordIsReadAtOrBelowTheHorizonOnly) {
  MapHistory store;
  using payment_history::Kind;
  store.records[payment_history::key(Kind::payment, "pay_1", 5)] = "five";
  store.records[payment_history::key(Kind::payment, "pay_1", 9)] = "nine";
  store.records[payment_history::key(Kind::payment, "pay_10", 2)] = "ten";
  store.records[payment_history::key(Kind::refund, "pay_1", 1)] = "a refund id";
  std::optional<std::string> v;
  ASSERT_TRUE(payment_history::read(store, Kind::payment, "pay_1", 4, &v).is_ok());
  EXPECT_FALSE(v);
  ASSERT_TRUE(payment_history::read(store, Kind::payment, "pay_1", 5, &v).is_ok());
  EXPECT_EQ(v, "five");
  ASSERT_TRUE(payment_history::read(store, Kind::payment, "pay_1", 8, &v).is_ok());
  EXPECT_EQ(v, "five");
  ASSERT_TRUE(
      payment_history::read(store, Kind::payment, "pay_1", payment_history::kNewest, &v).is_ok());
  EXPECT_EQ(v, "nine");
  ASSERT_TRUE(
      payment_history::read(store, Kind::payment, "pay", payment_history::kNewest, &v).is_ok());
  EXPECT_FALSE(v);  // a prefix of an id is not the id

  std::vector<std::pair<std::string, std::string>> seen;
  const auto collect = [&](std::string_view id, std::string_view value) {
    seen.emplace_back(id, value);
    return true;
  };
  ASSERT_TRUE(payment_history::scan(store, Kind::payment, "", 6, collect).is_ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"pay_1", "five"},
                                                                    {"pay_10", "ten"}}));
  seen.clear();
  ASSERT_TRUE(
      payment_history::scan(store, Kind::payment, "pay_1", payment_history::kNewest, collect)
          .is_ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"pay_10", "ten"}}));

  std::vector<std::string> newer;
  ASSERT_TRUE(payment_history::scan_newer(store, 4, [&](std::string_view k) {
                newer.emplace_back(k);
              }).is_ok());
  EXPECT_EQ(newer, (std::vector<std::string>{payment_history::key(Kind::payment, "pay_1", 5),
                                             payment_history::key(Kind::payment, "pay_1", 9)}));
}

}  // namespace
}  // namespace keel::payments
