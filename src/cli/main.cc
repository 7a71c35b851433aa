// keel: the command-line client of keeld. Human tables by default, the server's JSON with
// `-o json`. Exit status 0 on success, 1 on any error (the API's message on stderr) and when a
// create was answered with a result other than ok or exists.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cli/output.h"
#include "engine/engine.h"
#include "net/http_client.h"
#include "security/request_signing.h"

namespace {

namespace json = boost::json;
using namespace keel;

struct Globals {
  std::string server = "http://127.0.0.1:8080";
  std::string key;           // --key or KEEL_API_KEY
  net::TlsClientConfig tls;  // --cacert, --cert, --cert-key (https)
  std::string output = "table";
  bool json_output() const { return output == "json"; }
};

int fail(const std::string& message) {
  std::fprintf(stderr, "keel: %s\n", message.c_str());
  return 1;
}

// Percent-encodes an id for a URL path (valid ids need none; others reach the server intact and
// get its error).
std::string path_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '_' || c == '-' || c == '.' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 0xF]};
    }
  }
  return out;
}

// Sends one request. Prints transport and API errors and returns nullopt for them; returns the
// body's JSON object otherwise (printed as is with -o json when `print_json`).
std::optional<json::object> call(const Globals& g, std::string_view method,
                                 const std::string& target, const std::string& body,
                                 const net::HttpHeaders& headers = {}) {
  const auto endpoint = net::parse_http_url(g.server);
  if (!endpoint) {
    fail("--server must look like http://HOST:PORT or https://HOST:PORT, not " + g.server);
    return std::nullopt;
  }
  net::HttpClientOptions options{*endpoint};
  options.tls = g.tls;
  options.api_key = g.key;
  // Signed with the key: admin keys must be, and a signature costs other keys nothing.
  if (!g.key.empty()) options.sign = security::request_signer<net::HttpHeaders>(g.key);
  net::HttpClient client(options);
  net::HttpResponse res;
  if (Status s = client.request(method, target, body, headers, &res); !s.is_ok()) {
    fail(s.message());
    return std::nullopt;
  }
  json::error_code ec;
  json::value v = json::parse(res.body, ec);
  if (ec || !v.is_object()) {
    fail("unexpected answer (HTTP " + std::to_string(res.status) + "): " + res.body);
    return std::nullopt;
  }
  if (res.status >= 400) {
    const json::value* e = v.get_object().if_contains("error");
    const json::value* msg =
        e != nullptr && e->is_object() ? e->get_object().if_contains("message") : nullptr;
    fail((msg != nullptr ? cli::cell(*msg) : res.body) + " (HTTP " + std::to_string(res.status) +
         ")");
    if (g.json_output()) std::printf("%s\n", res.body.c_str());
    return std::nullopt;
  }
  return std::move(v.get_object());
}

// Prints an answer as JSON or with `print_table`.
int show(const Globals& g, const std::optional<json::object>& body,
         const std::function<void(const json::object&)>& print_table) {
  if (!body) return 1;
  if (g.json_output()) {
    std::printf("%s\n", json::serialize(*body).c_str());
  } else {
    print_table(*body);
  }
  return 0;
}

// 0 when every per-event result is ok or exists.
int results_status(const json::object& body) {
  for (const auto& r : body.at("data").as_array()) {
    const auto& result = r.as_object().at("result").as_string();
    if (result != "ok" && result != "exists") return 1;
  }
  return 0;
}

// "k=v" pairs into a JSON object; nullopt (after printing) for one without '='.
std::optional<json::object> parse_metadata(const std::vector<std::string>& pairs) {
  json::object m;
  for (const auto& p : pairs) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos) {
      fail("--metadata takes KEY=VALUE, not " + p);
      return std::nullopt;
    }
    m[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return m;
}

}  // namespace

namespace {

using Action = std::function<int()>;

struct AccountCreateArgs {
  std::string id, currency;
  std::vector<std::string> flags, metadata;
};

void add_account_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* account = app.add_subcommand("account", "accounts")->require_subcommand(1);

  auto create_args = std::make_shared<AccountCreateArgs>();
  CLI::App* create = account->add_subcommand("create", "create an account");
  create->add_option("--id", create_args->id, "account id")->required();
  create->add_option("--currency", create_args->currency, "ISO 4217 code, e.g. USD")->required();
  create->add_option("--flag", create_args->flags,
                     "debits_must_not_exceed_credits, credits_must_not_exceed_debits, closed");
  create->add_option("--metadata", create_args->metadata, "KEY=VALUE (repeatable)");
  create->callback([&g, action, a = create_args] {
    *action = [&g, a] {
      auto metadata = parse_metadata(a->metadata);
      if (!metadata) return 1;
      json::array flags(a->flags.begin(), a->flags.end());
      json::object body{{"id", a->id}, {"currency", a->currency}, {"flags", std::move(flags)}};
      if (!metadata->empty()) body["metadata"] = std::move(*metadata);
      const auto res = call(g, "POST", "/v1/accounts", json::serialize(body));
      const int shown = show(g, res, cli::print_results);
      return shown != 0 ? shown : results_status(*res);
    };
  });

  auto id = std::make_shared<std::string>();
  CLI::App* get = account->add_subcommand("get", "show an account and its balances");
  get->add_option("ID", *id, "account id")->required();
  get->callback([&g, action, id] {
    *action = [&g, id] {
      return show(g, call(g, "GET", "/v1/accounts/" + path_escape(*id), ""), cli::print_object);
    };
  });

  auto limit = std::make_shared<size_t>(10);
  auto after = std::make_shared<std::string>();
  CLI::App* transfers =
      account->add_subcommand("transfers", "an account's transfers, newest first");
  transfers->add_option("ID", *id, "account id")->required();
  transfers->add_option("--limit", *limit, "1 to 1000 (default 10)");
  transfers->add_option("--starting-after", *after, "transfer id from the previous page");
  transfers->callback([&g, action, id, limit, after] {
    *action = [&g, id, limit, after] {
      std::string target =
          "/v1/accounts/" + path_escape(*id) + "/transfers?limit=" + std::to_string(*limit);
      if (!after->empty()) target += "&starting_after=" + path_escape(*after);
      return show(g, call(g, "GET", target, ""), cli::print_transfers);
    };
  });

  for (const bool closing : {true, false}) {
    CLI::App* cmd = account->add_subcommand(closing ? "close" : "reopen",
                                            closing ? "close an account" : "reopen an account");
    cmd->add_option("ID", *id, "account id")->required();
    cmd->callback([&g, action, id, closing] {
      *action = [&g, id, closing] {
        const auto res = call(
            g, "POST", "/v1/accounts/" + path_escape(*id) + (closing ? "/close" : "/reopen"), "");
        const int shown = show(g, res, cli::print_object);
        return shown != 0 || res->at("result").as_string() != "ok" ? 1 : 0;
      };
    });
  }
}

struct TransferCreateArgs {
  std::string id, debit, credit, currency, post, void_id;
  std::optional<int64_t> amount;
  uint32_t timeout_s = 0;
  bool pending = false, linked = false;
  std::vector<std::string> metadata;
};

std::optional<json::object> transfer_body(const TransferCreateArgs& a) {
  auto metadata = parse_metadata(a.metadata);
  if (!metadata) return std::nullopt;
  json::object body{{"id", a.id}};
  json::array flags;
  if (a.pending) flags.emplace_back("pending");
  if (!a.post.empty()) flags.emplace_back("post_pending");
  if (!a.void_id.empty()) flags.emplace_back("void_pending");
  if (a.linked) flags.emplace_back("linked");
  if (!a.debit.empty()) body["debit_account_id"] = a.debit;
  if (!a.credit.empty()) body["credit_account_id"] = a.credit;
  if (a.amount) body["amount"] = *a.amount;
  if (!a.currency.empty()) body["currency"] = a.currency;
  if (!flags.empty()) body["flags"] = std::move(flags);
  if (!a.post.empty() || !a.void_id.empty())
    body["pending_id"] = a.post.empty() ? a.void_id : a.post;
  if (a.timeout_s != 0) body["timeout_seconds"] = a.timeout_s;
  if (!metadata->empty()) body["metadata"] = std::move(*metadata);
  return body;
}

void add_transfer_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* transfer = app.add_subcommand("transfer", "transfers")->require_subcommand(1);
  auto a = std::make_shared<TransferCreateArgs>();
  CLI::App* create = transfer->add_subcommand("create", "move money between two accounts");
  create->add_option("--id", a->id, "transfer id")->required();
  create->add_option("--debit", a->debit, "account debited");
  create->add_option("--credit", a->credit, "account credited");
  create->add_option("--amount", a->amount, "amount in minor units (1250 = 12.50 USD)");
  create->add_option("--currency", a->currency, "ISO 4217 code");
  create->add_flag("--pending", a->pending, "hold the amount (a pending transfer)");
  create->add_option("--timeout", a->timeout_s, "seconds until the hold expires (0: never)");
  create->add_option("--post", a->post, "post (capture) the pending transfer PENDING_ID");
  create->add_option("--void", a->void_id, "void (release) the pending transfer PENDING_ID");
  create->add_flag("--linked", a->linked, "link to the next event (single requests: fails)");
  create->add_option("--metadata", a->metadata, "KEY=VALUE (repeatable)");
  create->callback([&g, action, a] {
    *action = [&g, a] {
      const auto body = transfer_body(*a);
      if (!body) return 1;
      const auto res = call(g, "POST", "/v1/transfers", json::serialize(*body));
      const int shown = show(g, res, cli::print_results);
      return shown != 0 ? shown : results_status(*res);
    };
  });
  auto id = std::make_shared<std::string>();
  CLI::App* get = transfer->add_subcommand("get", "show a transfer");
  get->add_option("ID", *id, "transfer id")->required();
  get->callback([&g, action, id] {
    *action = [&g, id] {
      return show(g, call(g, "GET", "/v1/transfers/" + path_escape(*id), ""), cli::print_object);
    };
  });
}

// `keel payment get|list`.
void add_payment_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* payment = app.add_subcommand("payment", "payments")->require_subcommand(1);
  auto id = std::make_shared<std::string>();
  CLI::App* get = payment->add_subcommand("get", "a payment, its attempts and routing decisions");
  get->add_option("ID", *id, "payment id")->required();
  get->callback([&g, action, id] {
    *action = [&g, id] {
      return show(g, call(g, "GET", "/v1/payments/" + path_escape(*id), ""), cli::print_payment);
    };
  });
  struct ListArgs {
    std::string status, merchant, customer, starting_after;
    int limit = 10;
  };
  auto args = std::make_shared<ListArgs>();
  CLI::App* list = payment->add_subcommand("list", "payments by id, filtered");
  list->add_option("--status", args->status, "requires_confirmation, processing, succeeded, ...");
  list->add_option("--merchant", args->merchant, "merchant id");
  list->add_option("--customer", args->customer, "customer id");
  list->add_option("--limit", args->limit, "1 to 100")->check(CLI::Range(1, 100));
  list->add_option("--starting-after", args->starting_after, "a payment id (the cursor)");
  list->callback([&g, action, args] {
    *action = [&g, args] {
      std::string target = "/v1/payments?limit=" + std::to_string(args->limit);
      const auto add = [&target](const char* name, const std::string& value) {
        if (!value.empty()) target += std::string("&") + name + "=" + path_escape(value);
      };
      add("status", args->status);
      add("merchant", args->merchant);
      add("customer", args->customer);
      add("starting_after", args->starting_after);
      return show(g, call(g, "GET", target, ""), cli::print_payments);
    };
  });
}

// A runtime control: POST `target` with `body` (plus the reason, if any); shows the controls.
int post_control(const Globals& g, const std::string& target, json::object body,
                 const std::string& reason) {
  if (!reason.empty()) body["reason"] = reason;
  return show(g, call(g, "POST", target, json::serialize(body)), cli::print_controls);
}

// `keel channel list|pause|resume|drain|canary`, `keel mode`, `keel flow`, `keel controls`.
void add_control_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* channel = app.add_subcommand("channel", "routing channels")->require_subcommand(1);
  channel->add_subcommand("list", "channels with their breakers, statistics and controls")
      ->callback([&g, action] {
        *action = [&g] { return show(g, call(g, "GET", "/v1/channels", ""), cli::print_channels); };
      });
  struct ControlArgs {
    std::string id, reason, to;
    int share = 0;
  };
  for (const char* verb : {"pause", "resume", "drain"}) {
    auto args = std::make_shared<ControlArgs>();
    CLI::App* cmd = channel->add_subcommand(verb, std::string(verb) + " a channel (journaled)");
    cmd->add_option("ID", args->id, "channel")->required();
    cmd->add_option("--reason", args->reason, "why (kept in the audit trail)");
    cmd->callback([&g, action, args, verb] {
      *action = [&g, args, verb] {
        return post_control(g, "/v1/admin/channels/" + path_escape(args->id) + "/" + verb, {},
                            args->reason);
      };
    });
  }
  auto canary = std::make_shared<ControlArgs>();
  CLI::App* cmd = channel->add_subcommand(
      "canary", "send a share of a channel's traffic to its canary (share 0 stops it)");
  cmd->add_option("ID", canary->id, "the base channel")->required();
  cmd->add_option("--to", canary->to, "the canary channel (its canary_of is ID)");
  cmd->add_option("--share", canary->share, "percent, 0 to 100")
      ->required()
      ->check(CLI::Range(0, 100));
  cmd->add_option("--reason", canary->reason, "why");
  cmd->callback([&g, action, canary] {
    *action = [&g, canary] {
      json::object body{{"share", canary->share}};
      if (!canary->to.empty()) body["to"] = canary->to;
      return post_control(g, "/v1/admin/channels/" + path_escape(canary->id) + "/canary",
                          std::move(body), canary->reason);
    };
  });
  CLI::App* mode = app.add_subcommand("mode", "read-only mode")->require_subcommand(1);
  for (const char* which : {"read-only", "read-write"}) {
    auto args = std::make_shared<ControlArgs>();
    CLI::App* m = mode->add_subcommand(which, std::string("switch keel to ") + which);
    m->add_option("--reason", args->reason, "why");
    const bool read_only = std::string_view(which) == "read-only";
    m->callback([&g, action, args, read_only] {
      *action = [&g, args, read_only] {
        return post_control(g, "/v1/admin/mode", {{"read_only", read_only}}, args->reason);
      };
    });
  }
  CLI::App* flow = app.add_subcommand("flow", "kill switches per flow")->require_subcommand(1);
  for (const char* verb : {"disable", "enable"}) {
    auto args = std::make_shared<ControlArgs>();
    CLI::App* f = flow->add_subcommand(verb, std::string(verb) + " new requests of a flow");
    f->add_option("FLOW", args->id,
                  "card_payments, wallet_payments, topups, payouts, refunds, wallet_transfers")
        ->required();
    f->add_option("--reason", args->reason, "why");
    f->callback([&g, action, args, verb] {
      *action = [&g, args, verb] {
        return post_control(g, "/v1/admin/flows/" + path_escape(args->id) + "/" + verb, {},
                            args->reason);
      };
    });
  }
  app.add_subcommand("controls", "runtime controls in force and the latest changes")
      ->callback([&g, action] {
        *action = [&g] {
          return show(g, call(g, "GET", "/v1/admin/controls", ""), cli::print_controls);
        };
      });
}

void add_key_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* keys = app.add_subcommand("keys", "API keys (admin)")->require_subcommand(1);
  struct KeyArgs {
    std::string role, merchant, customer, label, id, reason, starting_after;
    int limit = 100;
  };
  auto create_args = std::make_shared<KeyArgs>();
  CLI::App* create =
      keys->add_subcommand("create", "create a key; its secret is printed once, never again");
  create->add_option("--role", create_args->role, "admin, merchant, customer_app, auditor, ledger")
      ->required()
      ->check(CLI::IsMember({"admin", "merchant", "customer_app", "auditor", "ledger"}));
  create->add_option("--merchant", create_args->merchant, "the merchant of a merchant key");
  create->add_option("--customer", create_args->customer, "the customer of a customer_app key");
  create->add_option("--label", create_args->label, "a note: who or what uses the key");
  create->callback([&g, action, a = create_args] {
    *action = [&g, a] {
      json::object body{{"role", a->role}};
      if (!a->merchant.empty()) body["merchant"] = a->merchant;
      if (!a->customer.empty()) body["customer"] = a->customer;
      if (!a->label.empty()) body["label"] = a->label;
      return show(g, call(g, "POST", "/v1/admin/keys", json::serialize(body)), cli::print_object);
    };
  });
  auto list_args = std::make_shared<KeyArgs>();
  CLI::App* list = keys->add_subcommand("list", "keys, by id (no secrets)");
  list->add_option("--limit", list_args->limit, "1 to 100")->check(CLI::Range(1, 100));
  list->add_option("--starting-after", list_args->starting_after, "a key id");
  list->callback([&g, action, a = list_args] {
    *action = [&g, a] {
      std::string target = "/v1/admin/keys?limit=" + std::to_string(a->limit);
      if (!a->starting_after.empty()) target += "&starting_after=" + path_escape(a->starting_after);
      return show(g, call(g, "GET", target, ""), cli::print_keys);
    };
  });
  auto show_args = std::make_shared<KeyArgs>();
  CLI::App* get = keys->add_subcommand("show", "one key (no secret)");
  get->add_option("ID", show_args->id, "key id (key_...)")->required();
  get->callback([&g, action, a = show_args] {
    *action = [&g, a] {
      return show(g, call(g, "GET", "/v1/admin/keys/" + path_escape(a->id), ""), cli::print_object);
    };
  });
  auto revoke_args = std::make_shared<KeyArgs>();
  CLI::App* revoke = keys->add_subcommand("revoke", "revoke a key, effective at once");
  revoke->add_option("ID", revoke_args->id, "key id (key_...)")->required();
  revoke->add_option("--reason", revoke_args->reason, "why (kept with the key)");
  revoke->callback([&g, action, a = revoke_args] {
    *action = [&g, a] {
      json::object body;
      if (!a->reason.empty()) body["reason"] = a->reason;
      return show(g,
                  call(g, "POST", "/v1/admin/keys/" + path_escape(a->id) + "/revoke",
                       json::serialize(body)),
                  cli::print_object);
    };
  });
}

// `keel api METHOD PATH [BODY]`: any route, with the CLI's key and signature (for routes the
// CLI has no command of its own for, e.g. creating a customer).
void add_api_command(CLI::App& app, const Globals& g, Action* action) {
  struct ApiArgs {
    std::string method, path, body, idempotency_key;
    std::vector<std::string> headers;
  };
  auto a = std::make_shared<ApiArgs>();
  CLI::App* api = app.add_subcommand("api", "send one request to any route (signed with --key)");
  api->add_option("METHOD", a->method, "GET or POST")
      ->required()
      ->check(CLI::IsMember({"GET", "POST"}));
  api->add_option("PATH", a->path, "e.g. /v1/customers")->required();
  api->add_option("BODY", a->body, "a JSON body");
  api->add_option("--idempotency-key", a->idempotency_key, "sent as Idempotency-Key");
  api->add_option("--header", a->headers, "NAME: VALUE, e.g. a traceparent (repeatable)");
  api->callback([&g, action, a] {
    *action = [&g, a] {
      net::HttpHeaders headers;
      if (!a->idempotency_key.empty()) headers.emplace_back("Idempotency-Key", a->idempotency_key);
      for (const std::string& h : a->headers) {
        const size_t colon = h.find(':');
        if (colon == std::string::npos) return fail("--header takes NAME: VALUE, not " + h);
        const size_t value = h.find_first_not_of(' ', colon + 1);
        headers.emplace_back(h.substr(0, colon),
                             value == std::string::npos ? std::string() : h.substr(value));
      }
      return show(g, call(g, a->method, a->path, a->body, headers), cli::print_object);
    };
  });
}

int verify_journal(const Globals& g, const std::string& dir) {
  engine::VerifyReport report;
  const Status s = engine::verify_data_dir(dir, &report);
  if (!s.is_ok()) return fail("journal verify " + dir + ": " + s.message());
  const json::object body = cli::verify_report_to_json(report);
  show(g, body, cli::print_object);
  if (!report.invariants.ok) return fail("invariant broken: " + report.invariants.problem);
  return 0;
}

// `keel audit verify` (offline, read only) and `keel audit head` (the server's, to anchor).
void add_audit_commands(CLI::App& app, const Globals& g, Action* action) {
  struct Verify {
    std::string data, archive;
    std::vector<std::string> anchors;
  };
  auto v = std::make_shared<Verify>();
  CLI::App* audit =
      app.add_subcommand("audit", "the tamper-evident audit chain")->require_subcommand(1);
  CLI::App* verify = audit->add_subcommand(
      "verify", "check the journal's hash chain in DATA (read only; keeld may run)");
  verify->add_option("DATA", v->data, "data directory")->required()->check(CLI::ExistingDirectory);
  verify
      ->add_option("--archive", v->archive,
                   "where journal retention archived segments: verify from record 1")
      ->check(CLI::ExistingDirectory);
  verify->add_option("--anchor", v->anchors,
                     "SEQ:HEAD, a head kept outside keel (keel audit head); repeatable");
  verify->callback([&g, action, v] {
    *action = [&g, v] {
      std::vector<journal::ChainAnchor> anchors;
      for (const std::string& a : v->anchors) {
        const size_t colon = a.find(':');
        uint64_t seq = 0;
        const auto [end, ec] = std::from_chars(a.data(), a.data() + std::min(colon, a.size()), seq);
        const auto head = colon == std::string::npos
                              ? std::nullopt
                              : journal::digest_from_hex(a.substr(colon + 1));
        if (ec != std::errc() || end != a.data() + colon || seq == 0 || !head) {
          return fail("--anchor takes SEQ:HEAD (a record number and 64 hex digits), not " + a);
        }
        anchors.push_back({{seq, *head}, "the anchor " + a.substr(0, colon)});
      }
      engine::AuditReport report;
      if (const Status s = engine::verify_audit(v->data, v->archive, anchors, &report);
          !s.is_ok()) {
        return fail("audit verify " + v->data + ": " + s.message());
      }
      show(g, cli::audit_report_to_json(report), cli::print_object);
      if (!report.chain.ok()) {
        return fail("the audit chain is broken: " + report.chain.problems.front());
      }
      return 0;
    };
  });
  CLI::App* head = audit->add_subcommand(
      "head", "the server's audit chain head: record and hash, to keep outside keel");
  head->callback([&g, action] {
    *action = [&g] {
      return show(g, call(g, "GET", "/v1/admin/audit/head", ""), cli::print_object);
    };
  });
}

// `keel vault status|rotate`: the card vault's master keys (docs/security.md, "The card vault").
void add_vault_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* vault =
      app.add_subcommand("vault", "the card vault's master keys")->require_subcommand(1);
  CLI::App* status =
      vault->add_subcommand("status", "master key versions, stored cards per version, decryptions");
  status->callback([&g, action] {
    *action = [&g] { return show(g, call(g, "GET", "/v1/admin/vault", ""), cli::print_object); };
  });
  auto keep_key = std::make_shared<bool>(false);
  CLI::App* rotate = vault->add_subcommand(
      "rotate", "add a master key version and re-wrap every stored card onto it");
  rotate->add_flag("--no-new-key", *keep_key,
                   "re-wrap onto the active version without adding one (finish a rotation, or "
                   "after a new version came through KEEL_VAULT_KEYS)");
  rotate->callback([&g, action, keep_key] {
    *action = [&g, keep_key] {
      return show(g,
                  call(g, "POST", "/v1/admin/vault/rotate",
                       *keep_key ? R"({"new_key": false})" : R"({"new_key": true})"),
                  cli::print_object);
    };
  });
}

// `keel customer erase ID`: crypto-shredding (docs/security.md, "Personal data and erasure").
void add_customer_commands(CLI::App& app, const Globals& g, Action* action) {
  CLI::App* customer =
      app.add_subcommand("customer", "a customer's personal data")->require_subcommand(1);
  auto id = std::make_shared<std::string>();
  CLI::App* erase = customer->add_subcommand(
      "erase",
      "delete the customer's personal data key: their name, top-up sources and payout "
      "destinations become unreadable everywhere, backups included; balances stay (admin)");
  erase->add_option("ID", *id, "the customer's id (cus_...)")->required();
  erase->callback([&g, action, id] {
    *action = [&g, id] {
      return show(g, call(g, "POST", "/v1/customers/" + *id + "/erase", ""), cli::print_object);
    };
  });
}

void add_other_commands(CLI::App& app, const Globals& g, Action* action) {
  auto full = std::make_shared<bool>(false);
  CLI::App* status = app.add_subcommand("status", "the server's engine status");
  status->add_flag("--full", *full, "add the state hash and an invariant check (slow)");
  status->callback([&g, action, full] {
    *action = [&g, full] {
      const std::string target = *full ? "/v1/admin/status?full=true" : "/v1/admin/status";
      return show(g, call(g, "GET", target, ""), cli::print_object);
    };
  });
  auto dir = std::make_shared<std::string>();
  CLI::App* journal = app.add_subcommand("journal", "offline journal tools")->require_subcommand(1);
  CLI::App* verify = journal->add_subcommand(
      "verify", "check a data directory (checksums, replay, invariants) without changing it");
  verify->add_option("DIR", *dir, "data directory")->required()->check(CLI::ExistingDirectory);
  verify->callback([&g, action, dir] { *action = [&g, dir] { return verify_journal(g, *dir); }; });

  add_audit_commands(app, g, action);
  add_vault_commands(app, g, action);
  add_customer_commands(app, g, action);

  auto rebuild_data = std::make_shared<std::string>();
  auto rebuild_archive = std::make_shared<std::string>();
  CLI::App* store =
      app.add_subcommand("store", "offline history store tools")->require_subcommand(1);
  CLI::App* rebuild = store->add_subcommand(
      "rebuild", "rebuild DATA/store from the journal (keeld stopped; needs every segment)");
  rebuild->add_option("DATA", *rebuild_data, "data directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  rebuild
      ->add_option("--archive", *rebuild_archive,
                   "where journal retention archived segments ([engine] archive_dir)")
      ->check(CLI::ExistingDirectory);
  rebuild->callback([&g, action, rebuild_data, rebuild_archive] {
    *action = [&g, rebuild_data, rebuild_archive] {
      engine::RebuildReport report;
      if (const Status s = engine::rebuild_store(*rebuild_data, *rebuild_archive, &report);
          !s.is_ok()) {
        return fail("store rebuild " + *rebuild_data + ": " + s.message());
      }
      show(g, cli::rebuild_report_to_json(report), cli::print_object);
      return 0;
    };
  });

  auto backup_dir = std::make_shared<std::string>();
  CLI::App* backup = app.add_subcommand(
      "backup", "a consistent online copy of keeld's state into DIR on keeld's machine");
  backup->add_option("DIR", *backup_dir, "absolute path; absent or an empty directory")->required();
  backup->callback([&g, action, backup_dir] {
    *action = [&g, backup_dir] {
      std::error_code ec;
      const std::string dir = std::filesystem::absolute(*backup_dir, ec).string();
      return show(g,
                  call(g, "POST", "/v1/admin/backup", json::serialize(json::object{{"dir", dir}})),
                  cli::print_object);
    };
  });
  auto from = std::make_shared<std::string>();
  auto to = std::make_shared<std::string>();
  CLI::App* restore = app.add_subcommand(
      "restore", "check a backup and copy it into a new data directory (keeld stopped)");
  restore->add_option("BACKUP", *from, "a directory `keel backup` wrote")
      ->required()
      ->check(CLI::ExistingDirectory);
  restore->add_option("DATA", *to, "the data directory to create (absent or empty)")->required();
  restore->callback([&g, action, from, to] {
    *action = [&g, from, to] {
      engine::VerifyReport report;
      if (const Status s = engine::restore_backup(*from, *to, &report); !s.is_ok()) {
        return fail("restore " + *from + " into " + *to + ": " + s.message());
      }
      json::object body = cli::verify_report_to_json(report);
      body["restored_into"] = *to;
      show(g, body, cli::print_object);
      return 0;
    };
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keel: command-line client of the keel payment core"};
  Globals g;
  app.add_option("--server", g.server, "keeld base URL")->capture_default_str();
  app.add_option("--key", g.key, "API key (default: $KEEL_API_KEY)")->envname("KEEL_API_KEY");
  app.add_option("--cacert", g.tls.ca_file,
                 "https: PEM file of the CAs keeld's certificate must chain to (default: the "
                 "system's)")
      ->envname("KEEL_CACERT");
  app.add_option("--cert", g.tls.cert_file, "https: client certificate (mutual TLS)");
  app.add_option("--cert-key", g.tls.key_file, "https: the client certificate's key");
  app.add_option("-o,--output", g.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.require_subcommand(1);
  Action action;
  add_account_commands(app, g, &action);
  add_transfer_commands(app, g, &action);
  add_payment_commands(app, g, &action);
  add_control_commands(app, g, &action);
  add_key_commands(app, g, &action);
  add_api_command(app, g, &action);
  add_other_commands(app, g, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;  // --help: 0; usage errors: 1
  }
  if (!action) return fail("no command");
  try {
    return action();
  } catch (const std::exception& e) {
    return fail(std::string("unexpected answer: ") + e.what());
  }
}
