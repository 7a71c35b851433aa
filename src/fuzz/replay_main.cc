// keel-fuzz-replay TARGET DIR...: runs a fuzz target (targets.h) over every file under the
// directories, in name order: the kept corpus of `make fuzz`, replayed in `make test` under the
// ASan/UBSan build (no second compiler needed). Exit 0 when every input ran; a broken property
// or a sanitizer report aborts. `keel-fuzz-replay --seeds DIR` writes valid inputs of the binary
// formats (commands, records, a snapshot) as a corpus to start from.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/records.h"
#include "fuzz/targets.h"
#include "journal/audit_chain.h"
#include "journal/format.h"
#include "payments/commands.h"
#include "security/api_key.h"
#include "security/key_ring.h"

namespace {

namespace fs = std::filesystem;
using namespace keel;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

// A journal_record input: the record type's byte, then the payload (targets.cc).
void write_record(const fs::path& root, engine::RecordType type, const std::string& name,
                  const std::string& payload) {
  write(root / "journal_record", name, std::string(1, static_cast<char>(type)) + payload);
}

// Each command as a seed of its own target and as a journal record of `type`.
template <typename Command, typename Encode>
void write_commands(const fs::path& root, const std::string& target, engine::RecordType type,
                    const std::vector<Command>& commands, Encode encode) {
  for (size_t i = 0; i < commands.size(); ++i) {
    std::string bytes;
    encode(commands[i], &bytes);
    write(root / target, "seed-" + std::to_string(i), bytes);
    write_record(root, type, target + "-" + std::to_string(i), bytes);
  }
}

int write_seeds(const fs::path& root) {
  // Payments commands of several kinds.
  std::vector<payments::Command> commands;
  commands.emplace_back(
      payments::cmd::CreateMerchant{"mch_1", "Shop", "http://127.0.0.1:1/h", "s"});
  commands.emplace_back(payments::cmd::CreateCustomer{"cus_1", "Ann"});
  payments::cmd::CreatePayment pay;
  pay.id = "pay_1";
  pay.amount = 1250;
  pay.currency = *Currency::from_code("USD");
  pay.merchant_id = "mch_1";
  pay.instrument = "tok_visa";
  commands.emplace_back(pay);
  commands.emplace_back(payments::cmd::ConfirmPayment{"pay_1", "cardco"});
  commands.emplace_back(payments::cmd::CapturePayment{"pay_1", 1000});
  commands.emplace_back(payments::cmd::CreateRefund{"re_1", "pay_1", 250});
  commands.back().idempotency = {"merchant:mch_1", "k1", std::string(32, 'f')};
  commands.emplace_back(payments::cmd::DetachPaymentMethod{"pm_0123456789abcdef01234567",
                                                           vault::OwnerKind::merchant, "mch_1"});
  commands.emplace_back(payments::cmd::EraseCustomer{"cus_1"});
  write_commands(
      root, "payments_command", engine::RecordType::payments, commands,
      [](const payments::Command& c, std::string* out) { payments::encode_command(c, out); });
  // Key ring commands.
  const security::GeneratedKey key = security::generate_key();
  const std::vector<security::Command> keys = {
      security::cmd::CreateKey{key.id, security::Role::merchant, "mch_1", key.hash, "label"},
      security::cmd::RevokeKey{key.id, "rotated"}, security::cmd::KeyUsed{key.id},
      security::cmd::UseNonce{key.id, "0123456789abcdef", 1'800'000'000}};
  write_commands(
      root, "security_command", engine::RecordType::security, keys,
      [](const security::Command& c, std::string* out) { security::encode_command(c, out); });
  // Ledger records, and a snapshot of a state that holds accounts, a transfer and a key.
  std::vector<ledger::AccountEvent> accounts = {{"a", *Currency::from_code("USD"), 0, {}},
                                                {"b", *Currency::from_code("USD"), 0, {}}};
  ledger::TransferEvent t;
  t.id = "t1";
  t.debit_account_id = "a";
  t.credit_account_id = "b";
  t.amount = 5;
  t.currency = *Currency::from_code("USD");
  const std::vector<ledger::TransferEvent> transfers = {t};
  std::string bytes;
  engine::encode_accounts(accounts, &bytes);
  write_record(root, engine::RecordType::create_accounts, "accounts", bytes);
  bytes.clear();
  engine::encode_transfers(transfers, &bytes);
  write_record(root, engine::RecordType::create_transfers, "transfers", bytes);
  engine::State state;
  state.ledger.create_accounts(accounts, 10);
  state.ledger.create_transfers(transfers, 20);
  (void)state.keys.apply(keys[0], 30);
  bytes.clear();
  engine::encode_state(state, &bytes);
  write(root / "snapshot", "seed-0", bytes);
  // A sealed chain record, its payload, and snapshot headers with and without a chain point.
  journal::ChainRecord link{1, 3, {}, {}};
  link.head[0] = 0xab;
  std::string payload;
  journal::encode_chain_record(link, &payload);
  write(root / "journal_bytes", "chain-payload", payload);
  std::string record;
  journal::append_record_header(&record, journal::kChainRecordType, 4, 99);
  record += payload;
  journal::seal_record(&record, 0);
  write(root / "journal_bytes", "chain-record", record);
  write(root / "journal_bytes", "snapshot-chained",
        journal::encode_snapshot_header(4, 99, bytes, journal::ChainPoint{4, link.head}) + bytes);
  write(root / "journal_bytes", "snapshot-unchained",
        journal::encode_snapshot_header(4, 99, bytes, std::nullopt) + bytes);
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--seeds") return write_seeds(argv[2]);
  if (argc < 3) {
    std::fprintf(stderr, "usage: keel-fuzz-replay TARGET DIR... | --seeds DIR\n");
    return 2;
  }
  const fuzz::Target* target = fuzz::find_target(argv[1]);
  if (target == nullptr) {
    std::fprintf(stderr, "keel-fuzz-replay: no target %s\n", argv[1]);
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 2; i < argc; ++i) {
    for (const auto& e : fs::recursive_directory_iterator(argv[i])) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    target->run(bytes.str());
  }
  std::printf("%s: %zu inputs\n", argv[1], files.size());
  return files.empty() ? 1 : 0;  // an empty corpus checks nothing
}
