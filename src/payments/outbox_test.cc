#include "payments/outbox.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <set>

#include "payments/map_history_test_util.h"

namespace keel::payments {
namespace {

constexpr Timestamp kT0 = 1'800'000'000 * kNanosPerSecond;
constexpr Timestamp kSecond = kNanosPerSecond;
constexpr Timestamp kHour = 3600 * kSecond;
constexpr Timestamp kDay = 24 * kHour;
constexpr std::string_view kUrl = "http://127.0.0.1:9000/hooks";

Event event(std::string id, Timestamp at, std::string merchant = "m_1",
            std::string type = "payment.succeeded", std::string object = "pay_1") {
  return Event{std::move(id),       std::move(type), std::move(merchant), std::move(object), at,
               R"({"amount":1250})"};
}

std::string encoded(const Outbox& o) {
  std::string out;
  o.encode(&out);
  return out;
}

std::vector<std::string> ids(const EventList& list) {
  std::vector<std::string> out;
  for (const StoredEvent& s : list.data) out.push_back(s.event.id);
  return out;
}

// An outbox with an endpoint for m_1 and one event added at kT0.
Outbox with_pending_event(OutboxOptions options = {}) {
  Outbox o(options);
  EXPECT_EQ(o.set_endpoint("m_1", kUrl, "whsec_1"), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_1", kT0)), OutboxResult::ok);
  return o;
}

TEST(OutboxUrl, AcceptsHttpAndHttpsUrls) {
  const auto u = parse_endpoint_url("http://hooks.example.com:8443/keel/events?v=2");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->target, "/keel/events?v=2");
  EXPECT_EQ(parse_endpoint_url("http://h")->port, 80);
  EXPECT_EQ(parse_endpoint_url("http://h")->target, "/");
  EXPECT_EQ(parse_endpoint_url("http://h:1?a=b")->target, "/?a=b");
  EXPECT_EQ(parse_endpoint_url("http://10.0.0.1:65535/a%20b")->target, "/a%20b");
  const auto s = parse_endpoint_url("https://hooks.example.com/keel");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, 443);
  EXPECT_FALSE(parse_endpoint_url("http://h")->tls);
}

TEST(OutboxUrl, RefusesEverythingElse) {
  for (const char* url : {"",
                          "https:/h/",
                          "HTTP://h/",
                          "HTTPS://h/",
                          "ftp://h/",
                          "http://",
                          "http:///x",
                          "http://u:p@h/",
                          "http://h:0/",
                          "http://h:65536/",
                          "http://h:/",
                          "http://h:8a/",
                          "http://h/#frag",
                          "http://[::1]:80/",
                          "http://h/a b",
                          "http://h/%zz",
                          "http://h/%4",
                          "http://-h/",
                          "http://h./",
                          "h:80/x",
                          "http://h/\r\nX: y"}) {
    EXPECT_FALSE(is_valid_endpoint_url(url)) << url;
  }
  EXPECT_FALSE(is_valid_endpoint_url("http://h/" + std::string(kEndpointUrlLengthMax, 'a')));
}

TEST(OutboxEndpoints, SetValidatesAndReplaces) {
  Outbox o;
  EXPECT_EQ(o.set_endpoint("", kUrl, "s"), OutboxResult::merchant_id_invalid);
  EXPECT_EQ(o.set_endpoint("m 1", kUrl, "s"), OutboxResult::merchant_id_invalid);
  EXPECT_EQ(o.set_endpoint("m_1", "https://h/#x", "s"), OutboxResult::url_invalid);
  EXPECT_EQ(o.set_endpoint("m_1", kUrl, ""), OutboxResult::secret_invalid);
  EXPECT_EQ(o.set_endpoint("m_1", kUrl, "has space"), OutboxResult::secret_invalid);
  EXPECT_EQ(o.set_endpoint("m_1", kUrl, std::string(kEndpointSecretLengthMax + 1, 's')),
            OutboxResult::secret_invalid);
  EXPECT_EQ(o.endpoint("m_1"), nullptr);
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, std::string(kEndpointSecretLengthMax, 's')),
            OutboxResult::ok);
  ASSERT_EQ(o.set_endpoint("m_1", "http://h:1/new", "whsec_2"), OutboxResult::ok);
  EXPECT_EQ(*o.endpoint("m_1"), (WebhookEndpoint{"http://h:1/new", "whsec_2"}));
  EXPECT_EQ(o.remove_endpoint("m_1"), OutboxResult::ok);
  EXPECT_EQ(o.remove_endpoint("m_1"), OutboxResult::endpoint_not_found);
}

TEST(OutboxEndpoints, EndpointsAreBounded) {
  OutboxOptions opts;
  opts.endpoints_max = 2;
  Outbox o(opts);
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  ASSERT_EQ(o.set_endpoint("m_2", kUrl, "s"), OutboxResult::ok);
  EXPECT_EQ(o.set_endpoint("m_3", kUrl, "s"), OutboxResult::endpoints_full);
  EXPECT_EQ(o.set_endpoint("m_2", "http://h/", "s2"), OutboxResult::ok);  // replacing is fine
}

TEST(OutboxAdd, InvalidEventsAreRefusedAndStoreNothing) {
  Outbox o;
  const auto with = [](auto change) {
    Event e = event("evt_1", kT0);
    change(e);
    return e;
  };
  EXPECT_EQ(o.add(with([](Event& e) { e.id = "pay_1"; })), OutboxResult::event_id_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.id = "evt_"; })), OutboxResult::event_id_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.id = "evt_ 1"; })), OutboxResult::event_id_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.type = ""; })), OutboxResult::type_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.type = "Payment.Succeeded"; })),
            OutboxResult::type_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.type = std::string(kEventTypeLengthMax + 1, 'a'); })),
            OutboxResult::type_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.merchant_id = ""; })), OutboxResult::merchant_id_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.object_id = "a\"b"; })), OutboxResult::object_id_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.created_at = 0; })), OutboxResult::created_at_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.data = ""; })), OutboxResult::data_invalid);
  EXPECT_EQ(o.add(with([](Event& e) { e.data = "[1]"; })), OutboxResult::data_invalid);
  EXPECT_EQ(
      o.add(with([](Event& e) { e.data = "{" + std::string(kEventDataBytesMax, ' ') + "}"; })),
      OutboxResult::data_too_large);
  EXPECT_EQ(o.size(), 0u);
  EXPECT_EQ(o.stats(), OutboxStats{});
}

TEST(OutboxAdd, DuplicateIdIsRefused) {
  Outbox o;
  ASSERT_EQ(o.add(event("evt_1", kT0)), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_1", kT0 + 1, "m_2")), OutboxResult::event_exists);
  EXPECT_EQ(o.find("evt_1")->event.merchant_id, "m_1");
}

TEST(OutboxAdd, WithoutEndpointTheEventIsOnlyListed) {
  Outbox o;
  ASSERT_EQ(o.add(event("evt_1", kT0)), OutboxResult::ok);
  EXPECT_EQ(o.find("evt_1")->delivery.state, DeliveryState::no_endpoint);
  EXPECT_TRUE(o.due(kT0 + kDay, 10).empty());
  EXPECT_FALSE(o.next_attempt_at());
  // An endpoint set later does not reach back.
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  EXPECT_TRUE(o.due(kT0 + kDay, 10).empty());
  EXPECT_EQ(o.record_attempt("evt_1", true, kT0), AttemptRecordResult::not_pending);
}

TEST(OutboxAdd, EventsAreBoundedByCountAndBytes) {
  OutboxOptions opts;
  opts.events_max = 2;
  Outbox by_count(opts);
  ASSERT_EQ(by_count.add(event("evt_1", kT0)), OutboxResult::ok);
  ASSERT_EQ(by_count.add(event("evt_2", kT0 + 1)), OutboxResult::ok);
  EXPECT_EQ(by_count.add(event("evt_3", kT0 + 2)), OutboxResult::events_full);

  OutboxOptions bytes;
  bytes.event_data_bytes_max = 40;
  Outbox by_bytes(bytes);
  ASSERT_EQ(by_bytes.add(event("evt_1", kT0)), OutboxResult::ok);  // 15 bytes of data
  ASSERT_EQ(by_bytes.add(event("evt_2", kT0 + 1)), OutboxResult::ok);
  EXPECT_EQ(by_bytes.add(event("evt_3", kT0 + 2)), OutboxResult::events_full);
  EXPECT_EQ(by_bytes.data_bytes(), 30u);
  // Expiring old events frees room: add() expires first.
  EXPECT_EQ(by_bytes.add(event("evt_3", kT0 + 30 * kDay + 1)), OutboxResult::ok);
  EXPECT_EQ(by_bytes.size(), 1u);
  EXPECT_EQ(by_bytes.data_bytes(), 15u);
}

TEST(OutboxDelivery, ScheduledAtOnceWithTheRenderedBody) {
  Outbox o = with_pending_event();
  EXPECT_EQ(o.find("evt_1")->delivery.state, DeliveryState::pending);
  EXPECT_EQ(o.next_attempt_at(), kT0);
  EXPECT_TRUE(o.due(kT0 - 1, 10).empty());
  const std::vector<Delivery> due = o.due(kT0, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0], (Delivery{"evt_1", "m_1", std::string(kUrl), "whsec_1",
                              R"({"id":"evt_1","type":"payment.succeeded",)"
                              R"("created_at":"2027-01-15T08:00:00.000000000Z",)"
                              R"("data":{"amount":1250}})",
                              1}));
  EXPECT_EQ(due[0].body, render_event_json(o.find("evt_1")->event));
  EXPECT_EQ(o.due(kT0, 10), due);  // a query: asking again gives the same
}

TEST(OutboxDelivery, DueIsOrderedLimitedAndSkipsInFlight) {
  Outbox o;
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  ASSERT_EQ(o.set_endpoint("m_2", "http://h:2/", "s2"), OutboxResult::ok);
  ASSERT_EQ(o.add(event("evt_a", kT0, "m_1")), OutboxResult::ok);
  ASSERT_EQ(o.add(event("evt_b", kT0 + 1, "m_2")), OutboxResult::ok);
  ASSERT_EQ(o.add(event("evt_c", kT0 + 2, "m_3")), OutboxResult::ok);  // no endpoint
  ASSERT_EQ(o.add(event("evt_d", kT0 + 3, "m_1")), OutboxResult::ok);
  std::vector<std::string> got;
  for (const Delivery& d : o.due(kT0 + 10, 10)) got.push_back(d.event_id);
  EXPECT_EQ(got, (std::vector<std::string>{"evt_a", "evt_b", "evt_d"}));
  EXPECT_EQ(o.due(kT0 + 10, 2).size(), 2u);
  EXPECT_EQ(o.due(kT0 + 10, 0).size(), 0u);
  const std::set<std::string, std::less<>> in_flight = {"evt_a", "evt_b"};
  const auto skip = [&](std::string_view id) { return in_flight.contains(id); };
  const std::vector<Delivery> rest = o.due(kT0 + 10, 1, skip);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].event_id, "evt_d");
  EXPECT_EQ(o.due(kT0 + 10, 10)[1].url, "http://h:2/");
  EXPECT_EQ(o.pending(), 3u);
}

TEST(OutboxDelivery, DeliveredIsDoneAndLaterReportsAreNoOps) {
  Outbox o = with_pending_event();
  EXPECT_EQ(o.record_attempt("evt_1", true, kT0 + kSecond), AttemptRecordResult::delivered);
  const StoredEvent* s = o.find("evt_1");
  EXPECT_EQ(s->delivery, (DeliveryStatus{DeliveryState::delivered, 1, 0, kT0 + kSecond}));
  EXPECT_TRUE(o.due(kT0 + kDay, 10).empty());
  const std::string before = encoded(o);
  EXPECT_EQ(o.record_attempt("evt_1", false, kT0 + 2 * kSecond), AttemptRecordResult::not_pending);
  EXPECT_EQ(o.record_attempt("evt_1", true, kT0 + 2 * kSecond), AttemptRecordResult::not_pending);
  EXPECT_EQ(o.record_attempt("evt_404", true, kT0), AttemptRecordResult::not_found);
  EXPECT_EQ(encoded(o), before);
  EXPECT_EQ(o.stats().deliveries_delivered, 1u);
}

TEST(OutboxDelivery, FailuresBackOffExponentiallyWithBoundedJitter) {
  Outbox o = with_pending_event();
  Timestamp now = kT0;
  Timestamp base = kSecond;
  for (uint32_t attempt = 1; attempt <= 16; ++attempt) {
    ASSERT_EQ(o.due(now, 10).at(0).attempt, attempt);
    ASSERT_EQ(o.record_attempt("evt_1", false, now), AttemptRecordResult::retry_scheduled);
    const Timestamp wait = *o.next_attempt_at() - now;
    EXPECT_GE(wait, base / 2) << attempt;
    EXPECT_LE(wait, base) << attempt;
    EXPECT_EQ(wait, retry_delay_ns(OutboxOptions{}, "evt_1", attempt));
    EXPECT_TRUE(o.due(now + wait - 1, 10).empty());
    now += wait;
    base = std::min(base * 2, kHour);
  }
  EXPECT_EQ(o.find("evt_1")->delivery.attempts, 16u);
  EXPECT_EQ(o.stats().attempts_failed, 16u);
}

TEST(OutboxDelivery, RetryDelayIsDeterministicAndSpreadAcrossEvents) {
  const OutboxOptions opts;
  std::set<int64_t> delays;
  for (int i = 0; i < 50; ++i) {
    const std::string id = "evt_" + std::to_string(i);
    const int64_t d = retry_delay_ns(opts, id, 12);
    EXPECT_EQ(d, retry_delay_ns(opts, id, 12));
    EXPECT_GE(d, 1024 * kSecond);
    EXPECT_LE(d, 2048 * kSecond);
    delays.insert(d);
  }
  EXPECT_GT(delays.size(), 45u);  // jitter: not all at once after an outage
  EXPECT_LE(retry_delay_ns(opts, "evt_1", 1'000'000), kHour);
  EXPECT_GE(retry_delay_ns(opts, "evt_1", 1'000'000), kHour / 2);
  EXPECT_NE(retry_delay_ns(opts, "evt_1", 20), retry_delay_ns(opts, "evt_1", 21));
}

TEST(OutboxDelivery, GivesUpAfterTheDeliveryWindowWithALastTryAtItsEnd) {
  OutboxOptions opts;
  opts.delivery_window_s = 3 * 24 * 3600;
  Outbox o = with_pending_event(opts);
  const Timestamp window_end = kT0 + 3 * kDay;
  // A failure shortly before the window's end: the retry is clamped to the end.
  ASSERT_EQ(o.record_attempt("evt_1", false, window_end - kSecond / 10),
            AttemptRecordResult::retry_scheduled);
  EXPECT_EQ(o.next_attempt_at(), window_end);
  ASSERT_EQ(o.due(window_end, 1).size(), 1u);
  EXPECT_EQ(o.record_attempt("evt_1", false, window_end), AttemptRecordResult::gave_up);
  EXPECT_EQ(o.find("evt_1")->delivery, (DeliveryStatus{DeliveryState::gave_up, 2, 0, window_end}));
  EXPECT_EQ(o.stats().deliveries_gave_up, 1u);
  EXPECT_EQ(o.pending(), 0u);
  EXPECT_EQ(o.record_attempt("evt_1", true, window_end + 1), AttemptRecordResult::not_pending);
}

TEST(OutboxDelivery, AFailingEndpointIsTriedForThreeDaysThenGivenUp) {
  Outbox o = with_pending_event();
  Timestamp now = kT0;
  AttemptRecordResult r = AttemptRecordResult::retry_scheduled;
  uint32_t tries = 0;
  while (r == AttemptRecordResult::retry_scheduled) {
    ASSERT_EQ(o.due(now, 1).size(), 1u);
    r = o.record_attempt("evt_1", false, now);
    ++tries;
    if (r == AttemptRecordResult::retry_scheduled) now = *o.next_attempt_at();
  }
  EXPECT_EQ(r, AttemptRecordResult::gave_up);
  EXPECT_EQ(now, kT0 + 3 * kDay);
  EXPECT_GT(tries, 80u);  // ~12 quick tries, then about one every 45 min
  EXPECT_LT(tries, 160u);
}

TEST(OutboxDelivery, WindowIsConfigurable) {
  OutboxOptions opts;
  opts.delivery_window_s = 60;
  opts.retention_s = 60;
  Outbox o = with_pending_event(opts);
  EXPECT_EQ(o.record_attempt("evt_1", false, kT0 + 60 * kSecond - kSecond / 10),
            AttemptRecordResult::retry_scheduled);
  EXPECT_EQ(o.next_attempt_at(), kT0 + 60 * kSecond);
  EXPECT_EQ(o.record_attempt("evt_1", false, kT0 + 60 * kSecond), AttemptRecordResult::gave_up);
}

TEST(OutboxDelivery, ChangedEndpointAppliesToRetries) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.record_attempt("evt_1", false, kT0), AttemptRecordResult::retry_scheduled);
  ASSERT_EQ(o.set_endpoint("m_1", "http://other:81/x", "whsec_new"), OutboxResult::ok);
  const std::vector<Delivery> due = o.due(kT0 + kHour, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].url, "http://other:81/x");
  EXPECT_EQ(due[0].secret, "whsec_new");
  EXPECT_EQ(due[0].attempt, 2u);
}

TEST(OutboxRotation, BothSecretsSignUntilTheOverlapEndsThenOnlyTheNew) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.record_attempt("evt_1", false, kT0), AttemptRecordResult::retry_scheduled);
  const std::string before = encoded(o);
  // Refused rotations change nothing.
  EXPECT_EQ(o.rotate_secret("m_2", "whsec_2", kT0, kT0 + kDay), OutboxResult::endpoint_not_found);
  EXPECT_EQ(o.rotate_secret("m_1", "", kT0, kT0 + kDay), OutboxResult::secret_invalid);
  EXPECT_EQ(o.rotate_secret("m_1", "bad\nsecret", kT0, kT0 + kDay), OutboxResult::secret_invalid);
  EXPECT_EQ(o.rotate_secret("m_1", "whsec_1", kT0, kT0 + kDay), OutboxResult::secret_unchanged);
  EXPECT_EQ(encoded(o), before);

  ASSERT_EQ(o.rotate_secret("m_1", "whsec_2", kT0 + kSecond, kT0 + kDay), OutboxResult::ok);
  EXPECT_EQ(o.endpoint("m_1")->previous_secret, "whsec_1");
  std::vector<Delivery> due = o.due(kT0 + kHour, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].secret, "whsec_2");
  EXPECT_EQ(due[0].previous_secret, "whsec_1");  // the retry carries both
  due = o.due(kT0 + kDay, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].previous_secret, "");  // the overlap is over
  // An event after the overlap forgets the old secret for good.
  ASSERT_EQ(o.add(event("evt_2", kT0 + kDay)), OutboxResult::ok);
  EXPECT_EQ(o.endpoint("m_1")->previous_secret, "");
  EXPECT_EQ(o.endpoint("m_1")->previous_until, 0);
}

TEST(OutboxRotation, ARotationWithoutOverlapOrDuringAnotherKeepsOneOldSecretAtMost) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.rotate_secret("m_1", "whsec_2", kT0, kT0 + kDay), OutboxResult::ok);
  ASSERT_EQ(o.rotate_secret("m_1", "whsec_3", kT0 + kSecond, kT0 + kDay), OutboxResult::ok);
  EXPECT_EQ(o.endpoint("m_1")->previous_secret, "whsec_2");  // whsec_1 is gone
  ASSERT_EQ(o.rotate_secret("m_1", "whsec_4", kT0 + 2 * kSecond, kT0), OutboxResult::ok);
  EXPECT_EQ(o.endpoint("m_1")->previous_secret, "");  // no overlap: the old one stops at once
  EXPECT_EQ(o.due(kT0 + kHour, 10).at(0).previous_secret, "");
  // Replacing the endpoint ends a rotation too.
  ASSERT_EQ(o.rotate_secret("m_1", "whsec_5", kT0 + 3 * kSecond, kT0 + kDay), OutboxResult::ok);
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "whsec_6"), OutboxResult::ok);
  EXPECT_EQ(o.endpoint("m_1")->previous_secret, "");
}

TEST(OutboxRotation, ARotationInProgressRoundTripsAndWithoutOneTheEncodingIsUnchanged) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.set_endpoint("m_2", kUrl, "whsec_m2"), OutboxResult::ok);
  const std::string before = encoded(o);
  std::string canonical_before;
  ASSERT_TRUE(o.encode_full(&canonical_before, nullptr).is_ok());
  ASSERT_EQ(o.rotate_secret("m_1", "whsec_2", kT0, kT0 + kDay), OutboxResult::ok);
  const std::string bytes = encoded(o);
  EXPECT_NE(bytes, before);
  Outbox d;
  const Status s = Outbox::decode(bytes, &d);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(encoded(d), bytes);
  EXPECT_EQ(*d.endpoint("m_1"), *o.endpoint("m_1"));
  EXPECT_EQ(d.due(kT0 + kHour, 10), o.due(kT0 + kHour, 10));
  std::string canonical;
  ASSERT_TRUE(d.encode_full(&canonical, nullptr).is_ok());
  EXPECT_NE(canonical, canonical_before);
  // Every truncation of the rotation's bytes is refused.
  for (size_t n = before.size() - 8; n < bytes.size(); ++n) {
    Outbox t;
    EXPECT_FALSE(Outbox::decode(std::string_view(bytes).substr(0, n), &t).is_ok()) << n;
  }
  // A new event after the overlap ends the rotation: the encoding is the one without.
  ASSERT_EQ(o.record_attempt("evt_1", true, kT0 + kSecond), AttemptRecordResult::delivered);
  ASSERT_EQ(o.add(event("evt_2", kT0 + kDay)), OutboxResult::ok);
  std::string after;
  o.encode(&after);
  EXPECT_EQ(after.substr(0, 4), before.substr(0, 4));  // the version without rotations
}

TEST(OutboxDelivery, RemovingTheEndpointCancelsPendingDeliveries) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.add(event("evt_2", kT0 + 1)), OutboxResult::ok);
  ASSERT_EQ(o.record_attempt("evt_2", true, kT0 + 2), AttemptRecordResult::delivered);
  ASSERT_EQ(o.set_endpoint("m_2", kUrl, "s"), OutboxResult::ok);
  ASSERT_EQ(o.add(event("evt_3", kT0 + 3, "m_2")), OutboxResult::ok);
  ASSERT_EQ(o.remove_endpoint("m_1"), OutboxResult::ok);
  EXPECT_EQ(o.find("evt_1")->delivery, (DeliveryStatus{DeliveryState::canceled, 0, 0, 0}));
  EXPECT_EQ(o.find("evt_2")->delivery.state, DeliveryState::delivered);
  EXPECT_EQ(o.find("evt_3")->delivery.state, DeliveryState::pending);
  EXPECT_EQ(o.pending(), 1u);
  EXPECT_EQ(o.stats().deliveries_canceled, 1u);
  // The try that was in flight reports afterwards: nothing changes.
  EXPECT_EQ(o.record_attempt("evt_1", true, kT0 + 4), AttemptRecordResult::not_pending);
  ASSERT_EQ(o.add(event("evt_4", kT0 + 5)), OutboxResult::ok);
  EXPECT_EQ(o.find("evt_4")->delivery.state, DeliveryState::no_endpoint);
}

// Six events at kT0+1..6 across two merchants, types and objects.
Outbox listing_fixture() {
  Outbox o;
  EXPECT_EQ(o.add(event("evt_1", kT0 + 1, "m_1", "payment.succeeded", "pay_1")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_2", kT0 + 2, "m_2", "payment.succeeded", "pay_2")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_3", kT0 + 3, "m_1", "refund.succeeded", "re_1")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_4", kT0 + 4, "m_1", "payment.failed", "pay_3")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_5", kT0 + 5, "m_2", "refund.succeeded", "re_2")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_6", kT0 + 6, "m_1", "payment.captured", "pay_1")), OutboxResult::ok);
  return o;
}

using Ids = std::vector<std::string>;

TEST(OutboxList, NewestFirstWithCursorsAndHasMore) {
  const Outbox o = listing_fixture();
  EventList page = o.list(2, "", {});
  EXPECT_EQ(page.result, OutboxResult::ok);
  EXPECT_EQ(ids(page), (Ids{"evt_6", "evt_5"}));
  EXPECT_TRUE(page.has_more);
  page = o.list(2, "evt_5", {});
  EXPECT_EQ(ids(page), (Ids{"evt_4", "evt_3"}));
  EXPECT_TRUE(page.has_more);
  page = o.list(2, "evt_3", {});
  EXPECT_EQ(ids(page), (Ids{"evt_2", "evt_1"}));
  EXPECT_FALSE(page.has_more);
  page = o.list(100, "evt_1", {});
  EXPECT_TRUE(page.data.empty());
  EXPECT_FALSE(page.has_more);
  EXPECT_EQ(ids(o.list(6, "", {})).size(), 6u);
  EXPECT_FALSE(o.list(6, "", {}).has_more);
}

TEST(OutboxList, Filters) {
  const Outbox o = listing_fixture();
  EXPECT_EQ(ids(o.list(10, "", {.type = "", .merchant_id = "m_2", .object_id = ""})),
            (Ids{"evt_5", "evt_2"}));
  EXPECT_EQ(ids(o.list(10, "", {.type = "refund.succeeded", .merchant_id = "", .object_id = ""})),
            (Ids{"evt_5", "evt_3"}));
  EXPECT_EQ(ids(o.list(10, "", {.type = "", .merchant_id = "", .object_id = "pay_1"})),
            (Ids{"evt_6", "evt_1"}));
  EXPECT_EQ(ids(o.list(10, "", {"payment.succeeded", "m_1", "pay_1"})), (Ids{"evt_1"}));
  EXPECT_EQ(ids(o.list(10, "", {"payment.succeeded", "m_1", ""})), (Ids{"evt_1"}));
  EXPECT_TRUE(o.list(10, "", {"no.such", "", ""}).data.empty());
  // A cursor from outside the filter still positions the page.
  const EventList page = o.list(1, "evt_4", {"", "m_1", ""});
  EXPECT_EQ(ids(page), (Ids{"evt_3"}));
  EXPECT_TRUE(page.has_more);
  EXPECT_EQ(ids(o.list(10, "evt_5", {"", "m_1", ""})), (Ids{"evt_4", "evt_3", "evt_1"}));
}

TEST(OutboxList, BadLimitOrCursor) {
  const Outbox o = listing_fixture();
  EXPECT_EQ(o.list(0, "", {}).result, OutboxResult::limit_invalid);
  EXPECT_EQ(o.list(kEventListLimitMax + 1, "", {}).result, OutboxResult::limit_invalid);
  EXPECT_EQ(o.list(kEventListLimitMax, "", {}).result, OutboxResult::ok);
  const EventList bad = o.list(10, "evt_404", {});
  EXPECT_EQ(bad.result, OutboxResult::cursor_not_found);
  EXPECT_TRUE(bad.data.empty());
}

TEST(OutboxList, ShowsDeliveryStatus) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.record_attempt("evt_1", false, kT0), AttemptRecordResult::retry_scheduled);
  const EventList page = o.list(1, "", {});
  ASSERT_EQ(page.data.size(), 1u);
  EXPECT_EQ(page.data[0].delivery.state, DeliveryState::pending);
  EXPECT_EQ(page.data[0].delivery.attempts, 1u);
  EXPECT_EQ(page.data[0].delivery.next_attempt_at, *o.next_attempt_at());
}

TEST(OutboxExpire, EventsAreKeptForTheRetentionThenForgotten) {
  Outbox o = with_pending_event();
  ASSERT_EQ(o.add(event("evt_2", kT0 + kDay)), OutboxResult::ok);
  EXPECT_EQ(o.expire(kT0 + 30 * kDay - 1), 0u);
  EXPECT_EQ(o.expire(kT0 + 30 * kDay), 1u);  // evt_1, its delivery still pending
  EXPECT_EQ(o.find("evt_1"), nullptr);
  EXPECT_EQ(o.pending(), 1u);
  EXPECT_EQ(o.record_attempt("evt_1", true, kT0 + 30 * kDay), AttemptRecordResult::not_found);
  EXPECT_EQ(o.list(10, "evt_1", {}).result, OutboxResult::cursor_not_found);
  EXPECT_EQ(ids(o.list(10, "", {})), (Ids{"evt_2"}));
  EXPECT_EQ(o.expire(kT0 + 31 * kDay), 1u);
  EXPECT_EQ(o.size(), 0u);
  EXPECT_EQ(o.pending(), 0u);
  EXPECT_EQ(o.data_bytes(), 0u);
  EXPECT_EQ(o.stats().events_expired, 2u);
  // The id may be used again once forgotten.
  EXPECT_EQ(o.add(event("evt_1", kT0 + 32 * kDay)), OutboxResult::ok);
}

TEST(OutboxOptionsTest, Validity) {
  EXPECT_TRUE(OutboxOptions{}.valid());
  const auto with = [](auto change) {
    OutboxOptions o;
    change(o);
    return o.valid();
  };
  EXPECT_FALSE(with([](OutboxOptions& o) { o.delivery_window_s = 0; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.retention_s = o.delivery_window_s - 1; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.backoff_first_ms = 0; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.backoff_max_ms = o.backoff_first_ms - 1; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.events_max = 0; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.event_data_bytes_max = 0; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.endpoints_max = 0; }));
  EXPECT_FALSE(with([](OutboxOptions& o) { o.retention_s = int64_t{1} << 62; }));
}

// A history touching every state: delivered, retrying, gave up, canceled, no endpoint.
Outbox busy_outbox() {
  OutboxOptions opts;
  opts.delivery_window_s = 3600;
  opts.retention_s = 7200;
  Outbox o(opts);
  EXPECT_EQ(o.set_endpoint("m_1", kUrl, "whsec_1"), OutboxResult::ok);
  EXPECT_EQ(o.set_endpoint("m_2", "http://h:2/b?x=1", "whsec_2"), OutboxResult::ok);
  EXPECT_EQ(o.set_endpoint("m_3", "http://h:3/", "whsec_3"), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_1", kT0, "m_1")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_2", kT0 + 1, "m_2", "refund.succeeded", "re_1")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_3", kT0 + 2, "m_3")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_4", kT0 + 3, "m_9")), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_5", kT0 + 4, "m_1", "payment.failed", "pay_5")), OutboxResult::ok);
  EXPECT_EQ(o.record_attempt("evt_1", true, kT0 + 5), AttemptRecordResult::delivered);
  EXPECT_EQ(o.record_attempt("evt_2", false, kT0 + 6), AttemptRecordResult::retry_scheduled);
  EXPECT_EQ(o.record_attempt("evt_5", false, kT0 + kHour + 4), AttemptRecordResult::gave_up);
  EXPECT_EQ(o.remove_endpoint("m_3"), OutboxResult::ok);
  return o;
}

TEST(OutboxCodec, RoundTripIsCanonicalAndRebuildsIndexes) {
  const Outbox o = busy_outbox();
  const std::string bytes = encoded(o);
  Outbox d;
  const Status status = Outbox::decode(bytes, &d);
  ASSERT_TRUE(status.is_ok()) << status.message();
  EXPECT_EQ(encoded(d), bytes);
  EXPECT_EQ(d.options(), o.options());
  EXPECT_EQ(d.stats(), o.stats());
  EXPECT_EQ(d.size(), o.size());
  EXPECT_EQ(d.pending(), o.pending());
  EXPECT_EQ(d.data_bytes(), o.data_bytes());
  EXPECT_EQ(d.next_attempt_at(), o.next_attempt_at());
  EXPECT_EQ(d.due(kT0 + kDay, 10), o.due(kT0 + kDay, 10));
  for (const EventFilter& f :
       {EventFilter{}, EventFilter{"", "m_1", ""}, EventFilter{"refund.succeeded", "", ""},
        EventFilter{"", "", "pay_1"}}) {
    EXPECT_EQ(d.list(10, "", f).data, o.list(10, "", f).data);
  }
  EXPECT_EQ(*d.endpoint("m_2"), *o.endpoint("m_2"));
  // The decoded outbox goes on exactly as the original.
  Outbox a = o;
  for (Outbox* x : {&a, &d}) {
    EXPECT_EQ(x->record_attempt("evt_2", false, kT0 + 100 * kSecond),
              AttemptRecordResult::retry_scheduled);
    EXPECT_EQ(x->add(event("evt_6", kT0 + kHour, "m_2")), OutboxResult::ok);
    EXPECT_EQ(x->expire(kT0 + 2 * kHour + 2), 3u);
  }
  EXPECT_EQ(encoded(a), encoded(d));
}

TEST(OutboxCodec, EmptyRoundTrip) {
  const Outbox o;
  const std::string bytes = encoded(o);
  Outbox d(OutboxOptions{.delivery_window_s = 1, .retention_s = 1});
  ASSERT_TRUE(Outbox::decode(bytes, &d).is_ok());
  EXPECT_EQ(encoded(d), bytes);
  EXPECT_EQ(d.options(), OutboxOptions{});
}

TEST(OutboxCodec, EveryTruncationFailsCleanly) {
  const std::string bytes = encoded(busy_outbox());
  for (size_t n = 0; n < bytes.size(); ++n) {
    Outbox d;
    ASSERT_EQ(d.add(event("evt_keep", kT0)), OutboxResult::ok);
    EXPECT_FALSE(Outbox::decode(std::string_view(bytes).substr(0, n), &d).is_ok()) << n;
    EXPECT_NE(d.find("evt_keep"), nullptr);  // left unchanged
  }
  Outbox d;
  EXPECT_FALSE(Outbox::decode(bytes + "x", &d).is_ok());
}

TEST(OutboxCodec, EverySingleByteCorruptionIsRefusedOrDecodesToACanonicalState) {
  const std::string bytes = encoded(busy_outbox());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xFF}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      Outbox d;
      if (Outbox::decode(bad, &d).is_ok()) {
        // Whatever decodes must be a consistent state: it re-encodes to itself and works.
        const std::string again = encoded(d);
        Outbox e;
        ASSERT_TRUE(Outbox::decode(again, &e).is_ok()) << i;
        EXPECT_EQ(encoded(e), again) << i;
        (void)d.due(kT0 + kDay, 100);
        (void)d.list(100, "", {});
        d.expire(kT0 + 100 * kDay);
      }
    }
  }
}

TEST(OutboxCodec, InconsistentStatesAreRefused) {
  Outbox o;
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  ASSERT_EQ(o.add(event("evt_1", kT0)), OutboxResult::ok);
  const std::string bytes = encoded(o);
  // Drop the endpoint record, leaving a pending delivery without an endpoint. The endpoint
  // count follows the version (4), the options (7 * 8), next_seq (8) and the counters (7 * 8).
  const size_t endpoint_count_at = 4 + 7 * 8 + 8 + 7 * 8;
  const size_t record_size = (2 + 3) + (2 + kUrl.size()) + (2 + 1);  // "m_1", url, "s"
  const std::string pending_no_endpoint = bytes.substr(0, endpoint_count_at) +
                                          std::string(8, '\0') +
                                          bytes.substr(endpoint_count_at + 8 + record_size);
  Outbox d;
  EXPECT_FALSE(Outbox::decode(pending_no_endpoint, &d).is_ok());
  // A bad version.
  std::string bad_version = bytes;
  bad_version[0] = 9;
  EXPECT_FALSE(Outbox::decode(bad_version, &d).is_ok());
  ASSERT_TRUE(Outbox::decode(bytes, &d).is_ok());
}

TEST(OutboxReplay, TheSameCommandsGiveTheSameStateAndSchedule) {
  const auto run = [] {
    Outbox o;
    EXPECT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
    Timestamp now = kT0;
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(o.add(event("evt_" + std::to_string(i), now)), OutboxResult::ok);
      now += 7 * kSecond;
      for (const Delivery& d : o.due(now, 5)) {
        o.record_attempt(d.event_id, d.event_id.back() == '3', now);
      }
    }
    return encoded(o);
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace keel::payments

namespace keel::payments {
namespace {

// A list of `o` whatever tier its events are in.
EventList list_any(const Outbox& o, const KvReader& history, size_t limit, std::string_view cursor,
                   const EventFilter& filter) {
  if (o.in_history() == 0) return o.list(limit, cursor, filter);
  std::optional<EventList> done;
  const EventPageInMemory page = o.list_in_memory(limit, cursor, filter, &done);
  if (done) return *done;
  EventList out;
  EXPECT_TRUE(Outbox::finish_list(page, history, &out).is_ok());
  return out;
}

std::string full(const Outbox& o, const KvReader& history) {
  std::string out;
  EXPECT_TRUE(o.encode_full(&out, &history).is_ok());
  return out;
}

// Every page of every filter and limit, the same from both outboxes.
void expect_same_lists(const Outbox& a, const Outbox& b, const KvReader& history) {
  const std::vector<EventFilter> filters = {{},
                                            {"", "m_1", ""},
                                            {"", "m_2", ""},
                                            {"refund.succeeded", "", ""},
                                            {"", "", "pay_2"},
                                            {"payment.succeeded", "m_3", ""},
                                            {"no.such", "", ""}};
  for (const EventFilter& f : filters) {
    for (const size_t limit : {1, 2, 3, 7, 100}) {
      std::string cursor;
      for (int page = 0; page < 200; ++page) {
        const EventList x = list_any(a, history, limit, cursor, f);
        const EventList y = b.list(limit, cursor, f);
        ASSERT_EQ(x.result, y.result) << f.merchant_id << f.type << f.object_id << " " << limit;
        ASSERT_EQ(x.data, y.data) << f.merchant_id << f.type << f.object_id << " " << limit;
        ASSERT_EQ(x.has_more, y.has_more);
        if (!x.has_more) break;
        cursor = x.data.back().event.id;
      }
    }
  }
  // Cursors that name no stored event, and cursors from outside the filter.
  for (const std::string cursor : {"evt_0000099999", "evt_", "evt_0000000000"}) {
    EXPECT_EQ(list_any(a, history, 3, cursor, {}).result, b.list(3, cursor, {}).result) << cursor;
  }
  for (size_t i = 0; i < b.size(); i += 5) {
    const EventList all = b.list(100, "", {});
    if (i >= all.data.size()) break;
    const std::string& cursor = all.data[i].event.id;
    EXPECT_EQ(list_any(a, history, 4, cursor, {"", "m_2", ""}).data,
              b.list(4, cursor, {"", "m_2", ""}).data);
  }
}

std::string padded_id(int n) {
  const std::string digits = std::to_string(n);
  return "evt_" + std::string(10 - digits.size(), '0') + digits;
}

TEST(OutboxHistory, ListsEncodingsAndExpiryAnswerTheSameWhereverTheEventsAre) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    std::mt19937 rng(seed);
    Outbox a;
    a.track_final(true);
    ASSERT_EQ(a.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
    Timestamp now = kT0;
    const std::vector<std::string> merchants = {"m_1", "m_2", "m_3"};
    const std::vector<std::string> types = {"payment.succeeded", "refund.succeeded",
                                            "payment.failed"};
    const std::vector<std::string> objects = {"pay_1", "pay_2", "pay_3", "re_1"};
    MapHistory history;
    std::set<uint64_t> handed;
    for (int i = 1; i <= 80; ++i) {
      now += kHour * (1 + rng() % 12);
      Event e =
          event(padded_id(i), now, merchants[rng() % 3], types[rng() % 3], objects[rng() % 4]);
      ASSERT_EQ(a.add(std::move(e)), OutboxResult::ok);
      // Some pending deliveries end (delivered, or failed until they give up).
      for (const Delivery& d : a.due(now, 3)) {
        (void)a.record_attempt(d.event_id, rng() % 2 == 0, now);
      }
      if (i == 60) {
        ASSERT_EQ(a.remove_endpoint("m_1"), OutboxResult::ok);  // cancels the rest
        ASSERT_EQ(a.set_endpoint("m_3", kUrl, "s"), OutboxResult::ok);
      }
      // The engine's rhythm: take what became final, make some of it cold (durable).
      std::vector<std::pair<std::string, std::string>> puts;
      std::vector<uint64_t> seqs;
      a.take_final(&puts, &seqs);
      for (auto& [k, v] : puts) history.records[k] = v;
      handed.insert(seqs.begin(), seqs.end());
      std::vector<uint64_t> cold;
      for (const uint64_t s : handed) {
        if (i < 70 && rng() % 4 != 0) cold.push_back(s);  // the last ones stay in memory
      }
      a.make_cold(cold);
      for (const uint64_t s : cold) handed.erase(s);
    }
    ASSERT_GT(a.in_history(), 0u) << seed;
    ASSERT_GT(a.in_memory(), 0u) << seed;
    // A twin with every event in memory: the canonical encoding of `a`, decoded.
    Outbox b;
    ASSERT_TRUE(Outbox::decode(full(a, history), &b).is_ok());
    EXPECT_EQ(b.in_history(), 0u);
    EXPECT_EQ(b.size(), a.size());
    EXPECT_EQ(encoded(b), full(a, history));
    expect_same_lists(a, b, history);
    // A snapshot (version 2) decodes to the same state, over the same store.
    const std::string snapshot = encoded(a);
    ASSERT_NE(snapshot, encoded(b));
    Outbox c;
    ASSERT_TRUE(Outbox::decode(snapshot, &c).is_ok());
    EXPECT_EQ(encoded(c), snapshot);
    EXPECT_EQ(full(c, history), encoded(b));
    expect_same_lists(c, b, history);
    // Expiry forgets events in both tiers alike; the store's expired records are ignored.
    const Timestamp mid = kT0 + 30 * kDay + (now - kT0) / 2;
    EXPECT_EQ(a.expire(mid), b.expire(mid));
    EXPECT_EQ(a.size(), b.size());
    EXPECT_EQ(a.first_seq(), b.first_seq());
    EXPECT_EQ(full(a, history), encoded(b));
    expect_same_lists(a, b, history);
    // A store that lacks an event the state counts on is an error, never a silent gap.
    MapHistory partial = history;
    for (auto it = partial.records.begin(); it != partial.records.end(); ++it) {
      if (!it->first.starts_with(kEventRecordPrefix)) continue;
      if (read_be64_suffix(it->first) < a.first_seq()) continue;
      partial.records.erase(it);
      break;
    }
    std::string out;
    EXPECT_FALSE(a.encode_full(&out, &partial).is_ok());
    EXPECT_FALSE(a.encode_full(&out, nullptr).is_ok());
  }
}

TEST(OutboxHistory, AnEventOlderThanTheNewestIsRefused) {
  Outbox o;
  ASSERT_EQ(o.add(event("evt_2", kT0 + 10)), OutboxResult::ok);
  EXPECT_EQ(o.add(event("evt_1", kT0 + 9)), OutboxResult::created_at_invalid);
  EXPECT_EQ(o.size(), 1u);
  EXPECT_EQ(o.add(event("evt_3", kT0 + 10)), OutboxResult::ok);  // the same time is fine
}

TEST(OutboxHistory, OnlyFinalEventsAreHandedOutEachOnceAndAgainAfterADecode) {
  Outbox o = with_pending_event();                                     // evt_1 pending
  ASSERT_EQ(o.add(event("evt_2", kT0 + 1, "m_2")), OutboxResult::ok);  // no endpoint: final
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<uint64_t> seqs;
  o.take_final(&puts, &seqs);
  EXPECT_TRUE(seqs.empty());  // nothing is collected without a history tier
  o.track_final(true);
  o.take_final(&puts, &seqs);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2}));
  EXPECT_EQ(puts.size(), 5u);  // the record and its four index records
  EXPECT_EQ(puts[0].first, event_key(2));
  seqs.clear();
  o.take_final(&puts, &seqs);
  EXPECT_TRUE(seqs.empty());
  ASSERT_EQ(o.record_attempt("evt_1", true, kT0 + 2), AttemptRecordResult::delivered);
  o.take_final(&puts, &seqs);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1}));
  Outbox d;
  ASSERT_TRUE(Outbox::decode(encoded(o), &d).is_ok());
  seqs.clear();
  d.take_final(&puts, &seqs);
  EXPECT_TRUE(seqs.empty());
  d.track_final(true);
  d.take_final(&puts, &seqs);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
  d.make_cold({1, 2, 7});  // 7: no such event, ignored
  EXPECT_EQ(d.in_memory(), 0u);
  EXPECT_EQ(d.in_history(), 2u);
  EXPECT_EQ(d.find("evt_1"), nullptr);
  EXPECT_EQ(d.data_bytes(), 0u);
}

// Backlogs (outbox.h): one merchant's dead endpoint holds at most a tenth of the outbox in
// pending deliveries; its later events wait deferred, and are sent in order as earlier ones end.

OutboxOptions small_outbox() {
  OutboxOptions o;
  o.events_max = 100;  // merchant_pending_max: 10
  return o;
}

TEST(OutboxBacklog, ADeadEndpointDefersItsMerchantsLaterEventsAndNoOneElses) {
  Outbox o(small_outbox());
  ASSERT_EQ(merchant_pending_max(o.options()), 10u);
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  ASSERT_EQ(o.set_endpoint("m_2", kUrl, "s"), OutboxResult::ok);
  for (int i = 1; i <= 30; ++i) ASSERT_EQ(o.add(event(padded_id(i), kT0 + i)), OutboxResult::ok);
  EXPECT_EQ(o.pending("m_1"), 10u);
  EXPECT_TRUE(o.backlogged("m_1"));
  EXPECT_EQ(o.find(padded_id(10))->delivery.state, DeliveryState::pending);
  EXPECT_EQ(o.find(padded_id(11))->delivery, DeliveryStatus{DeliveryState::deferred});
  EXPECT_EQ(o.deferred_since_start(), 20u);
  EXPECT_EQ(o.take_backlogs_started(), std::vector<std::string>{"m_1"});
  EXPECT_TRUE(o.take_backlogs_started().empty());  // each start is told once
  // Other merchants are not behind it.
  ASSERT_EQ(o.add(event(padded_id(31), kT0 + 31, "m_2")), OutboxResult::ok);
  ASSERT_EQ(o.add(event(padded_id(32), kT0 + 32, "m_3")), OutboxResult::ok);
  EXPECT_EQ(o.find(padded_id(31))->delivery.state, DeliveryState::pending);
  EXPECT_EQ(o.find(padded_id(32))->delivery.state, DeliveryState::no_endpoint);
  EXPECT_FALSE(o.backlogged("m_2"));
  EXPECT_EQ(o.pending(), 11u);
  // Deferred events are listed with their state, and never due.
  EXPECT_EQ(o.list(1, padded_id(31), {}).data[0].delivery.state, DeliveryState::deferred);
  for (const Delivery& d : o.due(kT0 + kDay, 100)) {
    if (d.merchant_id == "m_2") {
      EXPECT_EQ(d.event_id, padded_id(31));
    } else {
      EXPECT_LE(d.event_id, padded_id(10)) << d.event_id;
    }
  }
  EXPECT_EQ(o.due(kT0 + kDay, 100).size(), 11u);
}

// The engine's rhythm around a store: hand out what is final; later, in order, write each
// hand-out and make it cold (the tier reports it durable).
struct Mover {
  struct Batch {
    std::vector<std::pair<std::string, std::string>> puts;
    std::vector<uint64_t> seqs;
  };
  MapHistory history;
  std::deque<Batch> in_flight;  // handed out, not yet written

  void take(Outbox& o) {
    Batch& b = in_flight.emplace_back();
    o.take_final(&b.puts, &b.seqs);
  }
  void make_cold(Outbox& o, size_t batches) {
    for (; batches > 0 && !in_flight.empty(); --batches) {
      for (auto& [k, v] : in_flight.front().puts) history.records[k] = v;
      o.make_cold(in_flight.front().seqs);
      in_flight.pop_front();
    }
  }
};

// Delivers whatever is due until nothing is, and returns the ids in the order first tried.
std::vector<std::string> deliver_all(Outbox& o, Timestamp* now, Mover* mover) {
  std::vector<std::string> tried;
  for (int round = 0; round < 1000; ++round) {
    const std::vector<Delivery> due = o.due(*now, 7);
    if (due.empty()) break;
    for (const Delivery& d : due) {
      EXPECT_EQ(d.attempt, 1u);
      tried.push_back(d.event_id);
      EXPECT_EQ(o.record_attempt(d.event_id, true, *now), AttemptRecordResult::delivered);
    }
    *now += kSecond;
    if (mover != nullptr) {
      mover->take(o);
      mover->make_cold(o, round % 2 == 0 ? 1 : 3);
    }
  }
  return tried;
}

TEST(OutboxBacklog, EveryDeferredEventIsSentOnceInOrderAsEarlierOnesEndFromEitherTier) {
  for (const bool with_store : {false, true}) {
    Outbox o(small_outbox());
    Mover mover;
    if (with_store) o.set_history(&mover.history);
    ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
    Timestamp now = kT0;
    for (int i = 1; i <= 45; ++i) {
      ASSERT_EQ(o.add(event(padded_id(i), now)), OutboxResult::ok);
      if (with_store) {
        mover.take(o);
        mover.make_cold(o, 1);
      }
    }
    if (with_store) {
      mover.make_cold(o, 100);
      EXPECT_EQ(o.in_memory(), 10u) << "the deferred events are in the store";
    }
    const std::vector<std::string> tried = deliver_all(o, &now, with_store ? &mover : nullptr);
    std::vector<std::string> want;
    for (int i = 1; i <= 45; ++i) want.push_back(padded_id(i));
    EXPECT_EQ(tried, want) << with_store;
    EXPECT_FALSE(o.backlogged("m_1"));
    EXPECT_EQ(o.refilled_since_start(), 35u);
    EXPECT_EQ(o.stats().deliveries_delivered, 45u);
    EXPECT_EQ(o.stats().deliveries_scheduled, 45u);
    // With the backlog drained, the next event is pending at once.
    ASSERT_EQ(o.add(event(padded_id(46), now)), OutboxResult::ok);
    EXPECT_EQ(o.find(padded_id(46))->delivery.state, DeliveryState::pending);
    if (with_store) {
      mover.take(o);
      mover.make_cold(o, 100);
      EXPECT_EQ(o.in_memory(), 1u);
    }
  }
}

TEST(OutboxBacklog, ADeferredEventGetsOneTryEvenPastItsWindowThenGivesUp) {
  OutboxOptions options = small_outbox();
  options.delivery_window_s = 60;
  Outbox o(options);
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  for (int i = 1; i <= 11; ++i) ASSERT_EQ(o.add(event(padded_id(i), kT0)), OutboxResult::ok);
  ASSERT_TRUE(o.backlogged("m_1"));
  // Every try fails until the first ten give up at the window's end.
  Timestamp now = kT0;
  while (o.backlogged("m_1")) {
    const std::optional<Timestamp> next = o.next_attempt_at();
    ASSERT_TRUE(next.has_value());
    now = std::max(now, *next);
    for (const Delivery& d : o.due(now, 100)) (void)o.record_attempt(d.event_id, false, now);
  }
  const StoredEvent* last = o.find(padded_id(11));
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->delivery.state, DeliveryState::pending);
  EXPECT_EQ(last->delivery.attempts, 0u);
  EXPECT_EQ(last->delivery.next_attempt_at, now);  // due at once, though past its window
  ASSERT_EQ(o.record_attempt(padded_id(11), false, now), AttemptRecordResult::gave_up);
  EXPECT_EQ(o.find(padded_id(11))->delivery.attempts, 1u);
}

TEST(OutboxBacklog, ADeferredEventExpiresWithItsRetentionAndTheBacklogWithIt) {
  Outbox o(small_outbox());
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  for (int i = 1; i <= 12; ++i) ASSERT_EQ(o.add(event(padded_id(i), kT0 + i)), OutboxResult::ok);
  ASSERT_TRUE(o.backlogged("m_1"));
  EXPECT_EQ(o.expire(kT0 + 30 * kDay + 12), 12u);
  EXPECT_FALSE(o.backlogged("m_1"));
  EXPECT_EQ(o.pending(), 0u);
  ASSERT_EQ(o.add(event(padded_id(13), kT0 + 31 * kDay)), OutboxResult::ok);
  EXPECT_EQ(o.find(padded_id(13))->delivery.state, DeliveryState::pending);
}

TEST(OutboxBacklog, RemovingTheEndpointLeavesDeferredEventsWaitingForTheNextOne) {
  Outbox o(small_outbox());
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  for (int i = 1; i <= 12; ++i) ASSERT_EQ(o.add(event(padded_id(i), kT0 + i)), OutboxResult::ok);
  ASSERT_EQ(o.remove_endpoint("m_1"), OutboxResult::ok);
  EXPECT_EQ(o.find(padded_id(1))->delivery.state, DeliveryState::canceled);
  EXPECT_EQ(o.find(padded_id(12))->delivery.state, DeliveryState::deferred);
  EXPECT_EQ(o.pending(), 0u);
  ASSERT_EQ(o.add(event(padded_id(13), kT0 + 13)), OutboxResult::ok);
  EXPECT_EQ(o.find(padded_id(13))->delivery.state, DeliveryState::no_endpoint);
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s2"), OutboxResult::ok);
  ASSERT_EQ(o.add(event(padded_id(14), kT0 + 14)), OutboxResult::ok);  // refills first
  EXPECT_EQ(o.find(padded_id(11))->delivery.state, DeliveryState::pending);
  EXPECT_EQ(o.find(padded_id(12))->delivery.state, DeliveryState::pending);
  EXPECT_EQ(o.find(padded_id(14))->delivery.state, DeliveryState::pending);
  EXPECT_FALSE(o.backlogged("m_1"));
}

// The canonical encoding of an outbox whose events are all in memory.
std::string canonical(const Outbox& o) {
  std::string out;
  EXPECT_TRUE(o.encode_full(&out, nullptr).is_ok());
  return out;
}

// One step of a randomized run, recorded so that it can be replayed.
struct Step {
  bool is_add = true;
  Event event;             // add
  std::string event_id;    // record_attempt
  bool delivered = false;  // record_attempt
  Timestamp now = 0;       // record_attempt
};

void apply(Outbox& o, const Step& s) {
  if (s.is_add) {
    EXPECT_EQ(o.add(s.event), OutboxResult::ok);
  } else {
    (void)o.record_attempt(s.event_id, s.delivered, s.now);
  }
}

// Random merchants (one endpoint dead for a long while, one flaky, one without an endpoint),
// random tries, and the store's hand-outs made cold at random moments: the outbox with a store
// is at every step the same state as its twin that keeps everything in memory; snapshots taken
// on the way decode to it; and a snapshot replayed over the store as it is at the end (holding
// later states of its deferred events) ends in the same state too.
TEST(OutboxBacklog, RandomRunsAreTheSameStateWhereverTheEventsAreAndReplayExactly) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    std::mt19937 rng(seed);
    OutboxOptions options;
    // Room for every event in memory (the twin keeps them all), so that only backlogs differ
    // from a run without them: merchant_pending_max 40 to 49.
    options.events_max = 400 + rng() % 100;
    options.delivery_window_s = 1800;
    options.retention_s = 3600;
    Outbox a(options);  // with a store
    Outbox b(options);  // every event in memory
    Mover mover;
    a.set_history(&mover.history);
    for (Outbox* o : {&a, &b}) {
      ASSERT_EQ(o->set_endpoint("m_dead", kUrl, "s"), OutboxResult::ok);
      ASSERT_EQ(o->set_endpoint("m_flaky", kUrl, "s"), OutboxResult::ok);
    }
    std::vector<Step> steps;
    std::string snapshot;
    size_t snapshot_step = 0;
    Timestamp now = kT0;
    const int adds = 300 + static_cast<int>(rng() % 100);
    for (int i = 1; i <= adds; ++i) {
      now += kSecond * (1 + rng() % 30);
      const char* merchants[] = {"m_dead", "m_dead", "m_flaky", "m_none"};
      Step add;
      add.event = event(padded_id(i), now, merchants[rng() % 4]);
      steps.push_back(add);
      apply(a, add);
      apply(b, add);
      for (const Delivery& d : a.due(now, 1 + rng() % 6)) {
        // m_dead comes back in the last third of the run.
        const bool up = d.merchant_id == "m_flaky" ? rng() % 2 == 0 : i > adds * 2 / 3;
        steps.push_back(Step{false, {}, d.event_id, up, now});
        apply(a, steps.back());
        apply(b, steps.back());
      }
      if (rng() % 3 == 0) mover.take(a);
      if (rng() % 2 == 0) mover.make_cold(a, 1 + rng() % 2);
      ASSERT_EQ(full(a, mover.history), canonical(b)) << seed << " step " << i;
      if (i == adds / 2) {
        snapshot = encoded(a);
        snapshot_step = steps.size();
        Outbox c;
        ASSERT_TRUE(Outbox::decode(snapshot, &c).is_ok()) << seed;
        EXPECT_EQ(encoded(c), snapshot);
        EXPECT_EQ(full(c, mover.history), canonical(b));
      }
    }
    EXPECT_GT(a.deferred_since_start(), 0u) << seed;
    EXPECT_GT(a.refilled_since_start(), 0u) << seed;
    EXPECT_GT(a.in_history(), 0u) << seed;
    const std::string end = canonical(b);
    // The canonical encoding decodes to the same state, its backlogs rebuilt.
    Outbox twin;
    ASSERT_TRUE(Outbox::decode(end, &twin).is_ok()) << seed;
    EXPECT_EQ(canonical(twin), end);
    EXPECT_EQ(encoded(twin), encoded(b));
    EXPECT_EQ(twin.backlogged_merchants(), b.backlogged_merchants());
    // Recovery: the middle snapshot, then the steps after it, over today's store.
    mover.make_cold(a, mover.in_flight.size());
    ASSERT_EQ(full(a, mover.history), end);
    Outbox r;
    ASSERT_TRUE(Outbox::decode(snapshot, &r).is_ok());
    r.set_history(&mover.history);
    for (size_t k = snapshot_step; k < steps.size(); ++k) {
      apply(r, steps[k]);
      if (k % 5 == 0) mover.take(r);
      if (k % 7 == 0) mover.make_cold(r, 1);
    }
    EXPECT_EQ(full(r, mover.history), end) << seed;
  }
}

TEST(OutboxBacklog, SnapshotBacklogsAreCheckedOnDecode) {
  Outbox o(small_outbox());
  ASSERT_EQ(o.set_endpoint("m_1", kUrl, "s"), OutboxResult::ok);
  for (int i = 1; i <= 12; ++i) ASSERT_EQ(o.add(event(padded_id(i), kT0 + i)), OutboxResult::ok);
  const std::string bytes = encoded(o);  // version 3: the backlog of m_1 is (10, 12]
  Outbox d;
  ASSERT_TRUE(Outbox::decode(bytes, &d).is_ok());
  EXPECT_EQ(encoded(d), bytes);
  EXPECT_TRUE(d.backlogged("m_1"));
  // The backlog is the last 2 + 3 + 16 bytes: its merchant, taken 10 and newest 12.
  const auto with_tail = [&](uint64_t taken, uint64_t newest) {
    std::string b = bytes.substr(0, bytes.size() - 16);
    ByteWriter w(&b);
    w.u64(taken);
    w.u64(newest);
    return b;
  };
  ASSERT_EQ(with_tail(10, 12), bytes);
  Outbox bad;
  EXPECT_FALSE(Outbox::decode(with_tail(11, 12), &bad).is_ok());  // deferred 11 outside it
  EXPECT_FALSE(Outbox::decode(with_tail(10, 11), &bad).is_ok());  // deferred 12 outside it
  EXPECT_FALSE(Outbox::decode(with_tail(12, 12), &bad).is_ok());  // empty
  EXPECT_FALSE(Outbox::decode(with_tail(10, 13), &bad).is_ok());  // beyond the last event
}

}  // namespace
}  // namespace keel::payments
