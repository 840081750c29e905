#include "tests/fuzz/checks.hpp"

#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include "actors/snapshot.hpp"
#include "adapters/csv_import.hpp"
#include "adapters/http_api.hpp"
#include "events/compact_doc.hpp"
#include "events/envelope.hpp"
#include "events/expression.hpp"
#include "events/fact_reader.hpp"
#include "events/journal.hpp"
#include "events/policy.hpp"
#include "events/time.hpp"
#include "tests/actors/invariants.hpp"

namespace omniroute::fuzz {
namespace {

using events::Envelope;
using events::json;

// The front door's limit on a batch's events.
const size_t max_batch_events = adapters::HttpOptions().max_batch_events;

// An answer's JSON as the server writes it (http_api.cpp's send_json).
std::string answer_text(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// What differs between two envelopes, or empty.
std::string difference(const Envelope& a, const Envelope& b) {
  if (a.id != b.id) return "id";
  if (a.type != b.type) return "type";
  if (a.tenant != b.tenant) return "tenant";
  if (a.time_ms != b.time_ms) return "time";
  if (a.data != b.data) return "data";
  if (a.seq.has_value() != b.seq.has_value() || (a.seq && a.seq->value() != b.seq->value()))
    return "seq";
  if (a.cause != b.cause) return "cause";
  return "";
}

// Reads a fact's canonical text back as replay reads the journal, with and without a seq.
std::string reads_back(const Envelope& fact, const std::string& canonical) {
  auto back = events::read_envelope_text(canonical);
  if (!back) return "its canonical text does not read back: " + back.error().reason;
  if (auto d = difference(*back, fact); !d.empty())
    return "its canonical text reads back with another " + d;
  Envelope with_seq = fact;
  with_seq.seq = seq_no{1234567};
  const std::string spliced = events::to_text(with_seq, canonical);
  if (spliced != events::to_text(with_seq))
    return "the seq spliced into its text differs from to_text";
  auto journaled = events::read_envelope_text(spliced);
  if (!journaled) return "its journal text does not read back: " + journaled.error().reason;
  if (auto d = difference(*journaled, with_seq); !d.empty())
    return "its journal text reads back with another " + d;
  return "";
}

std::string check_events(std::string_view body) {
  auto fast = events::read_valid_facts(body, max_batch_events);
  bool array = false;
  auto general = adapters::read_events(body, max_batch_events, array);
  if (!general) {
    const adapters::BodyRefused& refused = general.error();
    if (refused.status != 400 || !refused.answer.contains("error"))
      return "a refusal without an error";
    if (const auto byte = refused.answer.find("byte");
        byte != refused.answer.end() && *byte > body.size() + 1)
      return "malformed JSON named at byte " + byte->dump() + " of " + std::to_string(body.size());
    answer_text(refused.answer);
  }
  if (general)
    for (size_t i = 0; i < general->size(); ++i)
      if (auto p = reads_back((*general)[i], events::to_text((*general)[i])); !p.empty())
        return "event " + std::to_string(i) + ": " + p;
  if (!fast) return "";
  if (!general)
    return "the fast path took a body the general path refuses: " +
           answer_text(general.error().answer);
  if (fast->array != array) return "the fast path reads an array as one event, or the reverse";
  if (fast->events.size() != general->size() || fast->texts.size() != general->size())
    return "the fast path read " + std::to_string(fast->events.size()) + " events, the general " +
           std::to_string(general->size());
  for (size_t i = 0; i < general->size(); ++i) {
    if (auto d = difference(fast->events[i], (*general)[i]); !d.empty())
      return "event " + std::to_string(i) + ": the fast path reads another " + d;
    if (fast->texts[i] != events::to_text((*general)[i]))
      return "event " + std::to_string(i) + ": the fast path's canonical text differs";
  }
  return "";
}

std::string check_envelope(std::string_view text) {
  auto fast = events::read_plain_envelope(text);
  auto dom = events::read_envelope_text_by_dom(text);
  if (!dom) answer_text(dom.error().to_json());
  if (!fast) return "";
  if (!dom) return "simdjson reads an envelope the DOM refuses: " + dom.error().reason;
  if (auto d = difference(*fast, *dom); !d.empty()) return "simdjson reads another " + d;
  return "";
}

// A subject of any shape: the document it is given.
class Doc final : public expr::Subject {
 public:
  explicit Doc(json doc) : doc_(std::move(doc)) {}
  expr::Value get(const std::vector<std::string>& path) const override {
    return expr::walk(doc_, path);
  }

 private:
  json doc_;
};

std::string check_expression(std::string_view text) {
  const auto& roots = expr::requirement_roots();
  auto compiled = expr::Expression::compile(text, roots);
  if (!compiled) {
    if (compiled.error().position < 1 || compiled.error().position > text.size() + 1)
      return "an error at position " + std::to_string(compiled.error().position) +
             " of a text of " + std::to_string(text.size()) + " bytes";
    if (compiled.error().reason.empty()) return "an error without a reason";
    answer_text(json{{"reason", compiled.error().message()}});
    return "";
  }
  // Every root as documents of other shapes: the values a path meets are of every kind.
  static const json shapes[] = {
      json::object(),
      json::parse(R"({"skills":{"billing":3,"sales":"x"},"languages":["en","fr"],"priority":7,
        "attributes":{"tags":["vip"],"tier":"gold"},"language":"en","channel":"voice","x":true})"),
      json::parse(
          R"({"skills":[1,2],"languages":"en","priority":"high","attributes":null,"a":{"b":{"c":[]}}})")};
  for (const json& shape : shapes) {
    std::vector<Doc> docs(roots.size(), Doc(shape));
    std::vector<const expr::Subject*> subjects;
    for (const auto& d : docs) subjects.push_back(&d);
    compiled->evaluate(subjects.data());
  }
  return "";
}

std::string check_policy(std::string_view text) {
  if (events::nesting_exceeds(text)) return "";  // the front door refuses it before parsing
  auto doc = events::parse_json(text);
  if (!doc) return "";
  auto parsed = policy::parse(*doc);
  if (!parsed) {
    if (parsed.error().reason.empty()) return "a refusal without a reason";
    answer_text(json{{"field", parsed.error().field}, {"reason", parsed.error().message()}});
  }
  return "";
}

// The anonymous bank's import: its mapping (examples/import) and its files' header.
adapters::CsvImporter bank_importer() {
  std::ifstream f(std::string(OMNIROUTE_SOURCE_DIR) + "/examples/import/anonymous-bank.json");
  auto mapping = adapters::ImportMapping::parse(json::parse(f));
  if (!mapping) throw std::runtime_error("the bank's mapping does not read: " + mapping.error());
  adapters::CsvImporter importer(std::move(*mapping), "bank");
  auto header = importer.read_header(
      "vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\tvru_time\t"
      "q_start\tq_exit\tq_time\toutcome\tser_start\tser_exit\tser_time\tserver\r");
  if (!header) throw std::runtime_error("the bank's header does not read: " + header.error());
  return importer;
}

std::string check_csv(std::string_view text) {
  static const adapters::CsvImporter importer = bank_importer();
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    adapters::RowResult r = importer.convert(line);
    const int outcomes = !r.bad.empty() + !r.skipped.empty() + r.event.has_value();
    if (outcomes != 1)
      return "a row that is " + std::to_string(outcomes) + " of event, skip and bad";
    if (!r.event) continue;
    auto fact = events::parse_fact(std::move(*r.event));
    if (fact) {
      if (auto p = reads_back(*fact, events::to_text(*fact)); !p.empty())
        return "a row's event: " + p;
    } else {
      answer_text(fact.error().to_json());
    }
  }
  return "";
}

std::string check_journal_record(std::string_view bytes) {
  auto record = events::decode(bytes);
  if (!record) {
    if (record.error().message().empty()) return "a corrupt record without a reason";
    return "";
  }
  const std::string encoded = events::encode(*record);
  if (encoded.size() != events::encoded_size(*record))
    return "encoded_size is not the encoding's size";
  auto again = events::decode(encoded);
  if (!again) return "a decoded record's encoding does not decode: " + again.error().message();
  if (events::encode(*again) != encoded)
    return "a decoded record's encoding decodes to another record";
  return "";
}

std::string check_compact_doc(std::string_view stored) {
  auto text = events::document_text(stored);
  if (!text || !events::is_compact(stored)) return "";
  try {
    const json doc = json::parse(*text);
    if (!doc.is_object()) return "a compact document renders as something other than an object";
    // (Not compared with what json dumps: a raw field's text is kept as it was written, and only
    // omniroute's writer, tested in compact_doc_test, gives it json's own text.)
  } catch (const json::parse_error& e) {
    return std::string("a compact document renders as text that is not JSON: ") + e.what();
  }
  return "";
}

std::string check_time(std::string_view text) {
  auto ms = events::parse_rfc3339_ms(text);
  if (!ms) return "";
  const std::string formatted = events::format_rfc3339_ms(*ms);
  auto again = events::parse_rfc3339_ms(formatted);
  if (!again || *again != *ms)
    return "'" + std::string(text) + "' parses to " + std::to_string(*ms) + ", formatted '" +
           formatted + "', which parses to " + (again ? std::to_string(*again) : "nothing");
  return "";
}

std::string check_snapshot(std::string_view state) {
  const partition_id p{0};
  actors::SnapshotPoint point;
  point.known.upto = journal_pos{10};
  const std::string bytes = actors::snapshot_header(p, point, state) + std::string(state);
  actors::PartitionState restored;
  auto decoded = actors::decode_snapshot(bytes, p, restored);
  if (!decoded && decoded.error().message().empty()) return "an unusable snapshot without a reason";
  // decode_snapshot takes any exception for damage; running out of memory is not damage found
  // but a count believed (the corpus test runs within 4 GiB of address space).
  if (!decoded && decoded.error().message().find("bad_alloc") != std::string::npos)
    return "decoding asked for more memory than the snapshot's bytes can account for";
  return "";
}

// The bytes choose a sequence of facts (tests/actors/invariants.hpp): its queues, agents and
// each fact, up to 150 facts or the bytes' end.
std::string check_routing(std::string_view bytes) {
  testing::invariants::Run run(bytes);
  run.go(150);
  return run.failure();
}

const std::map<std::string, std::function<std::string(std::string_view)>, std::less<>>& checks() {
  static const std::map<std::string, std::function<std::string(std::string_view)>, std::less<>>
      all = {
          {"events", check_events},
          {"envelope", check_envelope},
          {"expression", check_expression},
          {"policy", check_policy},
          {"routing", check_routing},
          {"csv", check_csv},
          {"journal_record", check_journal_record},
          {"compact_doc", check_compact_doc},
          {"time", check_time},
          {"snapshot", check_snapshot},
      };
  return all;
}

}  // namespace

const std::vector<std::string>& targets() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, check] : checks()) out.push_back(name);
    return out;
  }();
  return names;
}

std::string check(std::string_view target, std::string_view input) {
  const auto found = checks().find(target);
  if (found == checks().end()) return "no fuzz target '" + std::string(target) + "'";
  try {
    return found->second(input);
  } catch (const std::exception& e) {
    return std::string("threw: ") + e.what();
  } catch (...) {
    return "threw something that is not a std::exception";
  }
}

}  // namespace omniroute::fuzz
