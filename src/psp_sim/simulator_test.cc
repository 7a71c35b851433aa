#include "psp_sim/simulator.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "psp_sim/codec.h"

namespace keel::psp_sim {
namespace {

namespace json = boost::json;

constexpr Timestamp kNow = 1'795'435'200 * kNanosPerSecond;  // 2026-11-23T09:20:00Z

// PSP "acme" (with a listener of its own if `own_listener`) and PSP "bank".
SimConfig make_config(bool webhooks, bool own_listener = false) {
  PspConfig p;
  p.name = "acme";
  p.api_key = "sk";
  p.currencies = {*Currency::from_code("USD")};
  p.fee_fixed = 10;
  if (webhooks) {
    p.webhook = parse_webhook_url("http://127.0.0.1:1/hooks");
    p.webhook_secret = "whsec";
  }
  if (own_listener) p.listen = ListenAddress{"127.0.0.1", 0};
  SimConfig c;
  c.psps.push_back(p);
  PspConfig bank;
  bank.name = "bank";
  bank.api_key = "sk_bank";
  bank.currencies = {*Currency::from_code("EUR")};
  c.psps.push_back(bank);
  return c;
}

struct Call {
  Admission admission;
  Processed processed;
};

Call call(Simulator& sim, std::string_view method, std::string_view target, std::string_view body,
          std::string_view auth = "Bearer sk", Timestamp now = kNow,
          std::optional<size_t> listener_psp = std::nullopt) {
  const SimRequest r{method, target, auth, body, listener_psp};
  Call c;
  c.admission = sim.admit(r, now);
  if (c.admission.kind == Admission::Kind::process) {
    c.processed = sim.process(r, c.admission, now);
  } else {
    c.processed.reply = c.admission.reply;
  }
  return c;
}

json::object body_of(const Call& c) { return json::parse(c.processed.reply.body).as_object(); }

constexpr std::string_view kAuth =
    R"({"reference":"att_1","amount":1250,"currency":"USD","card_token":"tok","capture":false})";

TEST(Simulator, RoutesAndErrors) {
  Simulator sim(make_config(false), 1, kNow);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations", kAuth, "").processed.reply.status,
            401u);
  EXPECT_EQ(
      call(sim, "POST", "/psp/acme/v1/authorizations", kAuth, "Bearer x").processed.reply.status,
      401u);
  EXPECT_EQ(call(sim, "POST", "/psp/nope/v1/authorizations", kAuth).processed.reply.status, 404u);
  // Only "this PSP never received that reference" is `not_found`: a status query to a wrong PSP
  // name or path must not read as "never received" (keel would then think a retry is safe).
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/nope/v1/operations/att_1", "")).at("error").at("code"),
            "psp_not_found");
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/acme/v1/nothing", "")).at("error").at("code"),
            "route_not_found");
  const Call never_sent = call(sim, "GET", "/psp/acme/v1/operations/att_1", "");
  EXPECT_EQ(never_sent.processed.reply.status, 404u);
  EXPECT_EQ(body_of(never_sent).at("error").at("code"), "not_found");
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations", "{").processed.reply.status, 400u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations",
                 R"({"reference":"a b","amount":1,"currency":"USD","card_token":"t"})")
                .processed.reply.status,
            400u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations",
                 R"({"reference":"a","amount":0,"currency":"USD","card_token":"t"})")
                .processed.reply.status,
            400u);

  const Call a = call(sim, "POST", "/psp/acme/v1/authorizations", kAuth);
  ASSERT_EQ(a.processed.reply.status, 200u);
  EXPECT_EQ(body_of(a).at("status"), "authorized");
  EXPECT_EQ(body_of(a).at("decline_code"), nullptr);
  const std::string other = R"({"reference":"att_1","amount":1,"currency":"USD","card_token":"t"})";
  const Call conflict = call(sim, "POST", "/psp/acme/v1/authorizations", other);
  EXPECT_EQ(conflict.processed.reply.status, 409u);
  EXPECT_EQ(body_of(conflict).at("error").at("code"), "reference_reused");
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations/att_1/capture", R"({"amount":2000})")
                .processed.reply.status,
            422u);
  const Call cap = call(sim, "POST", "/psp/acme/v1/authorizations/att_1/capture", "");
  ASSERT_EQ(cap.processed.reply.status, 200u);
  EXPECT_EQ(body_of(cap).at("captured_amount"), 1250);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/authorizations/att_1/void", "").processed.reply.status,
            409u);
  const Call refund = call(sim, "POST", "/psp/acme/v1/refunds",
                           R"({"reference":"rfa_1","payment_reference":"att_1","amount":250})");
  ASSERT_EQ(refund.processed.reply.status, 200u);
  EXPECT_EQ(body_of(refund).at("type"), "refund");
  const Call csv = call(sim, "GET", "/psp/acme/v1/settlements/2026-11-23.csv", "");
  EXPECT_EQ(csv.processed.reply.content_type, "text/csv");
  EXPECT_NE(csv.processed.reply.body.find(",att_1,capture,1250,USD,10\n"), std::string::npos);
  EXPECT_NE(csv.processed.reply.body.find(",rfa_1,refund,250,USD,0\n"), std::string::npos);
  EXPECT_EQ(call(sim, "GET", "/psp/acme/v1/settlements/2026-13-01.csv", "").processed.reply.status,
            400u);
}

// A credential rotation as a PSP runs it: the new key is accepted beside the old one for an
// overlap, then alone. Bad bodies change nothing.
TEST(Simulator, ApiKeysRotateWithAnOverlap) {
  Simulator sim(make_config(false), 1, kNow);
  const auto status = [&](std::string_view auth) {
    return call(sim, "GET", "/psp/acme/v1/operations/att_9", "", auth).processed.reply.status;
  };
  EXPECT_EQ(status("Bearer sk"), 404u);  // authenticated: the reference is simply unknown
  EXPECT_EQ(status("Bearer sk_new"), 401u);
  const Call both = call(sim, "PUT", "/admin/psps/acme/api_keys", R"({"keys": ["sk_new", "sk"]})");
  ASSERT_EQ(both.processed.reply.status, 200u);
  EXPECT_EQ(body_of(both).at("keys"), 2);
  EXPECT_EQ(both.processed.reply.body.find("sk_new"), std::string::npos);  // never echoed
  EXPECT_EQ(status("Bearer sk"), 404u);
  EXPECT_EQ(status("Bearer sk_new"), 404u);
  EXPECT_EQ(status("sk_new"), 401u);
  for (const char* bad : {"", "{", "[]", R"({"keys": []})", R"({"keys": "sk"})",
                          R"({"keys": ["a", "b", "c", "d", "e"]})", R"({"keys": [""]})",
                          R"({"keys": [1]})", R"({"keys": ["a"], "more": 1})"}) {
    EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/api_keys", bad).processed.reply.status, 400u)
        << bad;
  }
  EXPECT_EQ(status("Bearer sk"), 404u);  // still both
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/api_keys", R"({"keys": ["sk_new"]})")
                .processed.reply.status,
            200u);
  EXPECT_EQ(status("Bearer sk"), 401u);
  EXPECT_EQ(status("Bearer sk_new"), 404u);
  // Each PSP has its own keys.
  EXPECT_EQ(
      call(sim, "GET", "/psp/bank/v1/operations/x", "", "Bearer sk_bank").processed.reply.status,
      404u);
}

TEST(Simulator, PayoutsTopupsBodies) {
  Simulator sim(make_config(false), 1, kNow);
  EXPECT_EQ(
      call(sim, "POST", "/psp/acme/v1/payouts",
           R"({"reference":"poa_1","amount":5,"currency":"USD","destination":{"iban":"DE89"}})")
          .processed.reply.status,
      200u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/payouts",
                 R"({"reference":"poa_2","amount":5,"currency":"USD","destination":{}})")
                .processed.reply.status,
            400u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/topups",
                 R"({"reference":"top_1","amount":5,"currency":"USD","bank_account":"NL91"})")
                .processed.reply.status,
            200u);
  EXPECT_EQ(call(sim, "POST", "/psp/acme/v1/topups",
                 R"({"reference":"top_2","amount":5,"currency":"EUR","bank_account":"NL91"})")
                .processed.reply.status,
            400u);
}

TEST(Simulator, FaultsOverAdminAndRetries) {
  Simulator sim(make_config(true), 1, kNow);
  const Call put = call(sim, "PUT", "/admin/psps/acme/faults", R"({"error_5xx_rate": 0.5})");
  ASSERT_EQ(put.processed.reply.status, 200u);
  EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", R"({"error_5xx_rate": 5})")
                .processed.reply.status,
            400u);
  // Every retry of a reference is a new draw: some attempt gets through, and the 503s changed
  // nothing.
  int unavailable = 0;
  Call c;
  for (int i = 0; i < 64; ++i) {
    c = call(sim, "POST", "/psp/acme/v1/authorizations", kAuth);
    if (c.processed.reply.status != 503) break;
    ++unavailable;
    EXPECT_EQ(c.admission.kind, Admission::Kind::answer);
  }
  EXPECT_EQ(c.processed.reply.status, 200u);
  EXPECT_LT(unavailable, 64);
  ASSERT_EQ(c.processed.effects.webhooks.size(), 1u);
  EXPECT_NE(c.processed.effects.webhooks[0].body.find("\"authorized\""), std::string::npos);

  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/faults",
                 R"({"refuse_rate": 1, "webhook_duplicate_rate": 1})")
                .processed.reply.status,
            200u);
  EXPECT_EQ(call(sim, "GET", "/psp/acme/v1/operations/att_1", "").admission.kind,
            Admission::Kind::refuse);
  const Call psps = call(sim, "GET", "/admin/psps", "");
  EXPECT_EQ(body_of(psps).at("psps").at(0).at("faults").at("refuse_rate"), 1.0);
  const Call ops = call(sim, "GET", "/admin/psps/acme/operations", "");
  EXPECT_EQ(body_of(ops).at("operations").as_array().size(), 1u);
  EXPECT_EQ(body_of(ops).at("totals").at(0).at("status"), "authorized");
  EXPECT_EQ(call(sim, "GET", "/admin/healthz", "").processed.reply.status, 200u);
}

TEST(Simulator, AsyncAndAfterProcessingFaults) {
  Simulator sim(make_config(true), 1, kNow);
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/faults",
                 R"({"async_rate": 1, "async_delay_ms": {"min": 7, "max": 7},
                     "response_lost_rate": 1, "webhook_loss_rate": 1})")
                .processed.reply.status,
            200u);
  const Call a = call(sim, "POST", "/psp/acme/v1/authorizations", kAuth);
  EXPECT_EQ(a.processed.delivery, Delivery::response_lost);
  EXPECT_TRUE(a.processed.effects.webhooks.empty());  // lost
  ASSERT_EQ(a.processed.effects.settles.size(), 1u);
  EXPECT_EQ(a.processed.effects.settles[0].delay_ms, 7);
  EXPECT_EQ(body_of(a).at("status"), "pending");
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", "{}").processed.reply.status, 200u);
  const Effects e = sim.settle(0, "att_1", kNow + 1);
  ASSERT_EQ(e.webhooks.size(), 1u);
  EXPECT_NE(e.webhooks[0].body.find("\"authorized\""), std::string::npos);
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/acme/v1/operations/att_1", "")).at("status"),
            "authorized");
}

TEST(Simulator, SameSeedSameOutcomes) {
  const auto run = [](uint64_t seed) {
    Simulator sim(make_config(false), seed, kNow);
    EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", R"({"decline_rate": 0.5})")
                  .processed.reply.status,
              200u);
    std::string statuses;
    for (int i = 0; i < 40; ++i) {
      const std::string body = R"({"reference":"att_)" + std::to_string(i) +
                               R"(","amount":5,"currency":"USD","card_token":"t"})";
      statuses += body_of(call(sim, "POST", "/psp/acme/v1/authorizations", body))
                      .at("status")
                      .as_string()
                      .c_str();
      statuses += ',';
    }
    return statuses;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

constexpr Timestamp kMs = kNanosPerSecond / 1000;

constexpr std::string_view kOutage = R"({"phases": [
    {"at_ms": 0, "faults": {"latency_ms": {"min": 5000, "max": 5000}}},
    {"at_ms": 10000, "faults": {"error_5xx_rate": 1}, "accepting": false},
    {"at_ms": 70000}]})";

TEST(Simulator, ScheduleReplacesFaultsPhaseByPhase) {
  Simulator sim(make_config(false, /*own_listener=*/true), 1, kNow);
  ASSERT_EQ(
      call(sim, "PUT", "/admin/psps/acme/faults", R"({"decline_rate": 1})").processed.reply.status,
      200u);
  const Call put = call(sim, "PUT", "/admin/psps/acme/schedule", kOutage);
  ASSERT_EQ(put.processed.reply.status, 200u) << put.processed.reply.body;
  EXPECT_TRUE(put.admission.listeners_changed);
  EXPECT_EQ(put.admission.psp, 0u);
  EXPECT_EQ(body_of(put).at("phase"), 0);
  EXPECT_EQ(body_of(put).at("next_change_in_ms"), 10'000);
  EXPECT_EQ(body_of(put).at("set_at").as_string(), format_rfc3339(kNow));

  // Phase 0 replaces the faults: the latency step, and no more declines.
  const auto authorize = [&](const std::string& ref, Timestamp at) {
    return call(sim, "POST", "/psp/acme/v1/authorizations",
                R"({"reference":")" + ref + R"(","amount":5,"currency":"USD","card_token":"t"})",
                "Bearer sk", at);
  };
  const Call first = authorize("att_1", kNow + 1);
  EXPECT_EQ(first.admission.latency_ms, 5'000);
  EXPECT_EQ(body_of(first).at("status"), "authorized");
  EXPECT_TRUE(sim.listener_plan(0, kNow + 9'999 * kMs).accepting);
  EXPECT_EQ(sim.listener_plan(0, kNow).next_change_at, kNow + 10'000 * kMs);

  // Phase 1: 503s, and the listener should refuse.
  EXPECT_EQ(authorize("att_2", kNow + 10'000 * kMs).processed.reply.status, 503u);
  EXPECT_FALSE(sim.listener_plan(0, kNow + 10'000 * kMs).accepting);
  const Call get = call(sim, "GET", "/admin/psps/acme/schedule", "", "", kNow + 12'000 * kMs);
  EXPECT_EQ(body_of(get).at("phase"), 1);
  EXPECT_EQ(body_of(get).at("elapsed_ms"), 12'000);
  EXPECT_EQ(body_of(get).at("next_change_in_ms"), 58'000);
  EXPECT_EQ(body_of(get).at("accepting"), false);
  EXPECT_EQ(body_of(get).at("faults").at("error_5xx_rate"), 1.0);
  EXPECT_FALSE(get.admission.listeners_changed);
  const Call listed = call(sim, "GET", "/admin/psps", "", "", kNow + 12'000 * kMs);
  EXPECT_EQ(body_of(listed).at("psps").at(0).at("faults").at("error_5xx_rate"), 1.0);

  // The last phase stays in force: no faults at all.
  const Call late = authorize("att_3", kNow + 3'600'000 * kMs);
  EXPECT_EQ(late.admission.latency_ms, 0);
  EXPECT_EQ(body_of(late).at("status"), "authorized");
  const ListenerPlan last = sim.listener_plan(0, kNow + 3'600'000 * kMs);
  EXPECT_TRUE(last.accepting);
  EXPECT_EQ(last.next_change_at, std::nullopt);

  // While the schedule is set it alone decides; PUT faults and PUT listener are refused.
  const Call faults = call(sim, "PUT", "/admin/psps/acme/faults", "{}");
  EXPECT_EQ(faults.processed.reply.status, 409u);
  EXPECT_EQ(body_of(faults).at("error").at("code"), "schedule_in_force");
  EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/listener", R"({"accepting": false})")
                .processed.reply.status,
            409u);

  // DELETE: the faults from before the schedule (decline_rate 1) are back.
  const Call removed =
      call(sim, "DELETE", "/admin/psps/acme/schedule", "", "", kNow + 20'000 * kMs);
  ASSERT_EQ(removed.processed.reply.status, 200u);
  EXPECT_TRUE(removed.admission.listeners_changed);
  EXPECT_EQ(body_of(removed).at("schedule"), nullptr);
  EXPECT_EQ(body_of(removed).at("phase"), nullptr);
  EXPECT_EQ(body_of(removed).at("faults").at("decline_rate"), 1.0);
  EXPECT_EQ(body_of(authorize("att_4", kNow + 20'001 * kMs)).at("status"), "declined");
  EXPECT_TRUE(sim.listener_plan(0, kNow + 20'001 * kMs).accepting);
  EXPECT_FALSE(call(sim, "DELETE", "/admin/psps/acme/schedule", "").admission.listeners_changed);
}

TEST(Simulator, ScheduleRepeatsFromWhenItWasSet) {
  Simulator sim(make_config(false, true), 1, kNow);
  const Timestamp set_at = kNow + 123 * kMs;
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/schedule",
                 R"({"phases": [{"at_ms": 0}, {"at_ms": 10000, "accepting": false}],
                     "repeat_ms": 20000})",
                 "", set_at)
                .processed.reply.status,
            200u);
  EXPECT_TRUE(sim.listener_plan(0, set_at + 9'999 * kMs).accepting);
  EXPECT_FALSE(sim.listener_plan(0, set_at + 10'000 * kMs).accepting);
  EXPECT_TRUE(sim.listener_plan(0, set_at + 20'000 * kMs).accepting);
  EXPECT_FALSE(sim.listener_plan(0, set_at + 50'000 * kMs).accepting);
  EXPECT_EQ(sim.listener_plan(0, set_at + 50'000 * kMs).next_change_at, set_at + 60'000 * kMs);
  // A clock stepped back before the PUT: the first phase.
  EXPECT_TRUE(sim.listener_plan(0, set_at - 5'000 * kMs).accepting);
}

// Bad schedules answer 400 and change nothing.
TEST(Simulator, BadScheduleChangesNothing) {
  Simulator sim(make_config(false, true), 1, kNow);
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/schedule", kOutage).processed.reply.status, 200u);
  const std::string before = call(sim, "GET", "/admin/psps/acme/schedule", "").processed.reply.body;
  const std::string_view bad[] = {
      "{",
      R"({"phases": [{"at_ms": 1}]})",
      R"({"phases": [{"at_ms": 0}, {"at_ms": 0}]})",
      R"({"phases": [{"at_ms": 0}, {"at_ms": 10}], "repeat_ms": 10})",
      R"({"phases": [{"at_ms": 0, "faults": {"refuse_rate": 7}}]})",
  };
  for (std::string_view body : bad) {
    const Call c = call(sim, "PUT", "/admin/psps/acme/schedule", body);
    EXPECT_EQ(c.processed.reply.status, 400u) << body;
    EXPECT_EQ(body_of(c).at("error").at("code"), "invalid_request");
    EXPECT_FALSE(c.admission.listeners_changed);
  }
  EXPECT_EQ(call(sim, "GET", "/admin/psps/acme/schedule", "").processed.reply.body, before);
  // A PSP without a listener of its own cannot be scheduled to refuse connections.
  const Call bank = call(sim, "PUT", "/admin/psps/bank/schedule",
                         R"({"phases": [{"at_ms": 0, "accepting": false}]})");
  EXPECT_EQ(bank.processed.reply.status, 400u);
  EXPECT_NE(body_of(bank).at("error").at("message").as_string().find("phases[0].accepting"),
            std::string::npos);
  const Call bank_ok = call(sim, "PUT", "/admin/psps/bank/schedule",
                            R"({"phases": [{"at_ms": 0, "faults": {"refuse_rate": 1}}]})");
  EXPECT_EQ(bank_ok.processed.reply.status, 200u);
  EXPECT_FALSE(bank_ok.admission.listeners_changed);  // no listener to change
  EXPECT_EQ(call(sim, "POST", "/admin/psps/acme/schedule", "{}").processed.reply.status, 404u);
  EXPECT_EQ(call(sim, "PUT", "/admin/psps/nope/schedule", kOutage).processed.reply.status, 404u);
}

// A phase changes the rates in force; each request's decision is still the seeded function
// of (seed, PSP, subject, attempt): the same seed gives the same outcomes.
TEST(Simulator, ScheduledDecisionsFollowTheSeed) {
  const auto run = [](uint64_t seed) {
    Simulator sim(make_config(false), seed, kNow);
    EXPECT_EQ(
        call(sim, "PUT", "/admin/psps/acme/schedule",
             R"({"phases": [{"at_ms": 0}, {"at_ms": 1000, "faults": {"decline_rate": 0.5}}]})")
            .processed.reply.status,
        200u);
    std::string statuses;
    for (int i = 0; i < 40; ++i) {
      const std::string body = R"({"reference":"att_)" + std::to_string(i) +
                               R"(","amount":5,"currency":"USD","card_token":"t"})";
      const Timestamp at = kNow + (i < 20 ? 0 : 1'000 * kMs);
      statuses += body_of(call(sim, "POST", "/psp/acme/v1/authorizations", body, "Bearer sk", at))
                      .at("status")
                      .as_string()
                      .c_str();
      statuses += ',';
    }
    return statuses;
  };
  const std::string five = run(5);
  EXPECT_EQ(five, run(5));
  EXPECT_NE(five, run(6));
  // No decline before the phase at 1 s, some after.
  const size_t first_decline = five.find("declined");
  ASSERT_NE(first_decline, std::string::npos);
  EXPECT_GE(first_decline, 20 * std::string_view("authorized,").size());
}

TEST(Simulator, ListenerOverAdmin) {
  Simulator sim(make_config(false, true), 1, kNow);
  sim.note_listener(0, 4242, true);
  const Call get = call(sim, "GET", "/admin/psps/acme/listener", "");
  ASSERT_EQ(get.processed.reply.status, 200u);
  EXPECT_EQ(
      body_of(get),
      (json::object{{"name", "acme"}, {"port", 4242}, {"accepting", true}, {"listening", true}}));
  const Call down = call(sim, "PUT", "/admin/psps/acme/listener", R"({"accepting": false})");
  ASSERT_EQ(down.processed.reply.status, 200u);
  EXPECT_TRUE(down.admission.listeners_changed);
  EXPECT_EQ(down.admission.psp, 0u);
  EXPECT_EQ(body_of(down).at("accepting"), false);
  EXPECT_EQ(body_of(down).at("listening"), false);  // what the server makes true
  EXPECT_FALSE(sim.listener_plan(0, kNow).accepting);
  EXPECT_EQ(sim.listener_plan(0, kNow).next_change_at, std::nullopt);
  sim.note_listener(0, 4242, false);
  EXPECT_EQ(body_of(call(sim, "GET", "/admin/psps/acme/listener", "")).at("listening"), false);

  for (std::string_view bad : {"", "{", "[]", R"({"accepting": 1})",
                               R"({"accepting": true, "x": 1})", R"({"up": true})"}) {
    const Call c = call(sim, "PUT", "/admin/psps/acme/listener", bad);
    EXPECT_EQ(c.processed.reply.status, 400u) << bad;
    EXPECT_FALSE(c.admission.listeners_changed);
  }
  EXPECT_FALSE(sim.listener_plan(0, kNow).accepting);  // unchanged by the failures
  ASSERT_EQ(call(sim, "PUT", "/admin/psps/acme/listener", R"({"accepting": true})")
                .processed.reply.status,
            200u);
  EXPECT_TRUE(sim.listener_plan(0, kNow).accepting);

  const Call none = call(sim, "GET", "/admin/psps/bank/listener", "");
  EXPECT_EQ(none.processed.reply.status, 404u);
  EXPECT_EQ(body_of(none).at("error").at("code"), "listener_not_found");
  EXPECT_EQ(call(sim, "PUT", "/admin/psps/bank/listener", R"({"accepting": false})")
                .processed.reply.status,
            404u);
  EXPECT_EQ(call(sim, "DELETE", "/admin/psps/acme/listener", "").processed.reply.status, 404u);
}

// On a PSP's own listener only that PSP's routes are served: not another PSP's, not /admin.
TEST(Simulator, OwnListenerServesItsPspOnly) {
  Simulator sim(make_config(false, true), 1, kNow);
  const std::optional<size_t> acme_port = 0;
  const Call own =
      call(sim, "POST", "/psp/acme/v1/authorizations", kAuth, "Bearer sk", kNow, acme_port);
  EXPECT_EQ(own.processed.reply.status, 200u);
  const Call other =
      call(sim, "GET", "/psp/bank/v1/operations/att_1", "", "Bearer sk_bank", kNow, acme_port);
  EXPECT_EQ(other.processed.reply.status, 404u);
  EXPECT_EQ(body_of(other).at("error").at("code"), "psp_not_found");
  const Call admin = call(sim, "GET", "/admin/healthz", "", "", kNow, acme_port);
  EXPECT_EQ(admin.processed.reply.status, 404u);
  EXPECT_EQ(body_of(admin).at("error").at("code"), "route_not_found");
  // The shared port serves both.
  EXPECT_EQ(call(sim, "GET", "/psp/bank/v1/operations/att_1", "", "Bearer sk_bank")
                .processed.reply.status,
            404u);  // bank's own "never received"
  EXPECT_EQ(body_of(call(sim, "GET", "/psp/bank/v1/operations/att_1", "", "Bearer sk_bank"))
                .at("error")
                .at("code"),
            "not_found");
  EXPECT_EQ(call(sim, "GET", "/psp/acme/v1/operations/att_1", "").processed.reply.status, 200u);
}

// A schedule from the config counts from the Simulator's start.
TEST(Simulator, ScheduleFromConfig) {
  SimConfig config = make_config(false, true);
  FaultSchedule schedule;
  ASSERT_EQ(parse_schedule(json::parse(R"({"phases": [{"at_ms": 0, "accepting": false},
                                                      {"at_ms": 500}]})"),
                           &schedule),
            "");
  config.psps[0].schedule = schedule;
  Simulator sim(std::move(config), 1, kNow);
  EXPECT_FALSE(sim.listener_plan(0, kNow).accepting);
  EXPECT_EQ(sim.listener_plan(0, kNow).next_change_at, kNow + 500 * kMs);
  EXPECT_TRUE(sim.listener_plan(0, kNow + 500 * kMs).accepting);
  EXPECT_EQ(call(sim, "PUT", "/admin/psps/acme/faults", "{}").processed.reply.status, 409u);
}

}  // namespace
}  // namespace keel::psp_sim
