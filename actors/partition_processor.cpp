#include "actors/partition_processor.hpp"

#include <algorithm>
#include <future>
#include <limits>
#include <new>
#include <set>
#include <unordered_set>

#include "actors/routing_subjects.hpp"
#include "actors/snapshot.hpp"
#include "events/fact_reader.hpp"
#include "events/log_line.hpp"
#include "events/prefetch.hpp"
#include "events/time.hpp"

namespace omniroute::actors {
// Event types are compared as views: the length first, the bytes only when it matches.
using namespace std::string_view_literals;
namespace {

using events::seconds_since;

using events::entry_kind;
using events::JournalEntry;
using events::JournalRecord;

routing::Tenant& tenant_of(std::map<std::string, routing::Tenant>& tenants,
                           const std::string& name) {
  auto it = tenants.find(name);
  if (it == tenants.end()) it = tenants.emplace(name, routing::Tenant(name)).first;
  return it->second;
}

// The envelope of entry `e` of the journal record `r` of partition p, or an error naming where
// the entry is.
result<routing::Envelope> entry_envelope(partition_id p, const events::StoredRecord& r,
                                         const JournalEntry& e) {
  auto env = events::read_envelope_text(e.envelope);
  if (!env)
    return Status::error("journal partition " + std::to_string(p.value()) + " position " +
                         std::to_string(r.pos.value()) + ": " + env.error().reason);
  return std::move(env.value());
}

// What replaying a record the views already have leaves of a tenant's touched sets: emptied,
// its closed conversations and visits packed as they go (as they are live).
void pack_touched(routing::Tenant& t) {
  const routing::Touched touched = t.take_touched();
  for (const auto& id : touched.conversations) t.pack_if_closed(id);
  for (const auto& [customer, conversation] : touched.journeys.visits)
    t.pack_visit_if_closed(customer, conversation);
}

// The fact of an ingest record that holds no envelope handed over by the front door in this
// process (the Kafka engine's records, another producer's, a record read back after a
// recovery): its payload parsed and validated here. Plainly valid (as the front door writes
// every record), it is read by simdjson as the door reads it, and `canonical` set to its text;
// else parsed the general way, which names what is wrong, and `j` keeps what was parsed, to
// name a refusal by.
result<routing::Envelope, events::event_error> fact_of(const events::IngestRecord& rec,
                                                       events::json& j, std::string& canonical) {
  using parsed_fact = result<routing::Envelope, events::event_error>;
  if (auto batch = events::read_valid_facts(rec.payload, 1); batch && !batch->array) {
    canonical = std::move(batch->texts[0]);
    return std::move(batch->events[0]);
  }
  auto bad = [](const char* reason) {
    return parsed_fact(events::event_error{"", "", reason, std::nullopt});
  };
  if (events::nesting_exceeds(rec.payload)) return bad("nested too deep");
  j = events::json::parse(rec.payload, nullptr, false);
  if (j.is_discarded()) return bad("not JSON");
  return events::parse_fact(std::move(j));  // moves only data out of j
}

// Documents that could not be rendered (project_touched), to the log.
void log_failures(partition_id p, const std::vector<std::string>& failures) {
  for (const auto& f : failures)
    log_line() << "omniroute: partition " << p.value() << ": " << f << "\n";
}

// A fact whose deciding threw: the ingest offset it came from and what was thrown.
struct FactFailed {
  ingest_offset offset;
  std::string what;
};

// Runs a stage of deciding the fact at `offset`: what it throws (but std::bad_alloc, which is
// not the fact's fault) is that fact's failure.
template <typename Stage>
void deciding(ingest_offset offset, Stage&& stage) {
  try {
    stage();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw FactFailed{offset, e.what()};
  }
}

// A journal entry of `e`. With `canonical` (the front-door text of a fact), its text splices
// the seq into it. The entry takes the envelope's tenant and key (a refusal's is its cause,
// the refused fact's id; any other entry's its own id): `e` is not read again.
JournalEntry entry_of(routing::Envelope& e, entry_kind kind, std::string canonical = {}) {
  std::string text = canonical.empty() ? events::to_text(e) : events::to_text(e, std::move(canonical));
  std::string& key = kind == entry_kind::refusal ? e.cause : e.id;
  return JournalEntry{kind, *e.seq, std::move(e.tenant), std::move(key), std::move(text)};
}

// What the i-th entry of an outcome is in the journal.
entry_kind kind_of_entry(const routing::Outcome& outcome, size_t i) {
  return outcome.fact == i                                ? entry_kind::fact
         : outcome.entries[i].type == "event.refused"sv   ? entry_kind::refusal
                                                          : entry_kind::decision;
}

// The members of a hash set of touched entities, in order: a memtable takes keys in order
// for less than in the order of a hash (measured: view writes +20% in hash order).
template <typename Set>
std::vector<const typename Set::value_type*> in_order(const Set& set) {
  std::vector<const typename Set::value_type*> out;
  out.reserve(set.size());
  for (const auto& member : set) out.push_back(&member);
  std::sort(out.begin(), out.end(), [](const auto* a, const auto* b) { return *a < *b; });
  return out;
}

}  // namespace

std::vector<std::string> project_touched(PartitionState& state, projections::ViewBatch& batch,
                                         std::map<std::string, std::set<std::string>>* touched_queues) {
  using projections::view;
  std::vector<std::string> failures;
  // Renders and writes one entity's document, if it has one (`write`); `key` is its key in the
  // view (a journey's is set by `write` before it renders).
  auto render = [&](view v, const std::string& tenant, const std::string& key, auto&& write) {
    try {
      if (state.render_fault && !key.empty()) state.render_fault(v, tenant, key);
      write();
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      if (key.empty()) throw;  // a journey whose key could not be made: nowhere to say so
      batch.put_document(v, tenant, key, events::json{{"id", key}, {"view_error", e.what()}});
      failures.push_back(std::string("the ") + projections::name_of(v) + " view of '" + key + "' (tenant " +
                         tenant + ") could not be rendered: " + e.what());
    }
  };
  batch.add_intervals(state.intervals.take_deltas());
  // (Named by references, not structured bindings, here and below: the lambdas capture them,
  // which C++17 allows of references only; g++ takes either, clang refuses the bindings.)
  for (const auto& touched : state.schedules.take_touched()) {
    const std::string &tenant = touched.first, &queue = touched.second;
    render(view::schedules, tenant, queue, [&] {
      if (auto* s = state.schedules.find(tenant, queue))
        batch.put_document(view::schedules, tenant, queue, projections::ScheduleBook::to_json(queue, *s));
    });
  }
  events::CompactDoc doc;  // one for every document: its buffer is reused
  std::string key;
  for (auto& named : state.tenants) {
    const std::string& name = named.first;
    routing::Tenant& tenant = named.second;
    routing::Touched t = tenant.take_touched();
    for (const auto& [id, stored] : t.forgotten_conversations)
      batch.put_document(view::conversations, name, id, std::string_view(stored));
    // Each list's entities were last changed a while ago, most out of the cache by now: the
    // lookups of the next few are fetched while one is written (events::fetching_ahead).
    events::fetching_ahead<routing::Tenant::conversation_stages>(
        t.conversations, [&](const std::string& id, int stage) { tenant.prefetch_conversation(id, stage); },
        [&](const std::string& id) {
          render(view::conversations, name, id, [&] {
            if (tenant.conversation_doc(id, doc)) batch.put_document(view::conversations, name, id, doc.bytes());
          });
          tenant.pack_if_closed(id);  // while it is in the cache
        });
    for (const auto& id : t.agents)
      render(view::agents, name, id, [&] {
        if (tenant.agent_doc(id, doc)) batch.put_document(view::agents, name, id, doc.bytes());
      });
    for (const auto* id : in_order(t.queues))
      render(view::queues, name, *id, [&] {
        if (auto q = tenant.queue_view(*id)) batch.put_document(view::queues, name, *id, *q);
      });
    events::fetching_ahead<journey::Journeys::customer_stages>(
        t.journeys.customers, [&](const std::string& id, int stage) { tenant.prefetch_customer(id, stage); },
        [&](const std::string& id) {
          render(view::customers, name, id, [&] {
            if (tenant.customer_doc(id, doc)) batch.put_document(view::customers, name, id, doc.bytes());
          });
        });
    for (const auto& [stored_key, stored] : t.journeys.forgotten)
      batch.put_document(view::journeys, name, stored_key, std::string_view(stored));
    events::fetching_ahead<journey::Journeys::visit_stages>(
        t.journeys.visits,
        [&](const journey::Journeys::VisitId& v, int stage) { tenant.prefetch_visit(v, stage); },
        [&](const journey::Journeys::VisitId& v) {
          const auto &customer = v.first, &conversation = v.second;
          key.clear();
          render(view::journeys, name, key, [&] {
            if (tenant.visit_doc(customer, conversation, key, doc))
              batch.put_document(view::journeys, name, key, doc.bytes());
          });
          tenant.pack_visit_if_closed(customer, conversation);  // while it is in the cache
        });
    for (const auto& id : t.arbitration.policies)
      render(view::policies, name, id, [&] {
        if (auto p = tenant.policy_view(id)) batch.put_document(view::policies, name, id, *p);
      });
    for (const auto& [id, d] : t.arbitration.decisions) batch.put_document(view::decisions, name, id, d);
    for (const auto& [id, o] : t.arbitration.outcomes) batch.put_document(view::outcomes, name, id, o);
    if (touched_queues) (*touched_queues)[name].insert(t.queues.begin(), t.queues.end());
  }
  return failures;
}

std::string replayed_from(const std::optional<journal_pos>& snapshot, size_t entries) {
  return (snapshot ? "its snapshot at position " + std::to_string(snapshot->value()) + ", then "
                   : std::string()) +
         std::to_string(entries) + " journal entries replayed";
}

Status replay(events::EventLog& log, projections::Store& store, partition_id p, journal_pos end,
              PartitionState& state, const events::KnownHistory& from, size_t* entries,
              events::KnownHistory* reached) {
  const journal_pos applied = store.applied(p);
  if (applied < from.upto)
    return Status::error("replay from position " + std::to_string(from.upto.value()) +
                         " would skip the views of " + std::to_string(applied.value()) + " on");
  projections::ViewBatch batch(store);
  journal_pos last{-1}, epoch = from.epoch;
  ingest_offset resume = from.resume;  // as a claim finds it (EventLog::claim)
  Status s = events::scan_history(
      log, p, end,
      [&](const events::StoredRecord& r) {
        if (entries) *entries += r.record.entries.size();
        if (r.record.ingest >= resume) resume = ingest_offset{r.record.ingest.value() + 1};
        for (const auto& e : r.record.entries) {
          auto env = entry_envelope(p, r, e);
          if (!env) return env.error();
          tenant_of(state.tenants, e.tenant).apply(*env);
          state.intervals.apply(*env);
          state.schedules.apply(*env);
        }
        if (r.pos >= applied) batch.put_record(r.record, p, r.pos);
        if (r.pos < applied) {
          for (auto& [name, t] : state.tenants) pack_touched(t);  // already in the views
          state.intervals.take_deltas();
          state.schedules.take_touched();
          return Status::ok();
        }
        last = r.pos;
        if (batch.size() >= 4096) {
          log_failures(p, project_touched(state, batch));
          return batch.commit(p, journal_pos{r.pos.value() + 1});
        }
        return Status::ok();
      },
      from.upto, events::EpochFilter(from.epoch), &epoch);
  if (!s) return s;
  if (reached) *reached = events::KnownHistory{end > from.upto ? end : from.upto, epoch, resume};
  log_failures(p, project_touched(state, batch));
  // Markers and zombie records change no view, but the views have seen everything up to `end`.
  journal_pos upto = end > applied ? end : applied;
  if (last.value() >= 0 || upto > applied) return batch.commit(p, upto);
  return Status::ok();
}

result<std::unique_ptr<Moment>> tenant_at(events::EventLog& log, const std::string& tenant,
                                          std::optional<seq_no> until_seq, std::optional<int64_t> until_ms) {
  const partition_id p = log.partition_of(tenant);
  auto end = log.journal_end(p);
  if (!end) return end.error();
  auto moment = std::make_unique<Moment>(tenant);
  bool past = false;  // read an entry after the moment: the rest of the history is not needed
  Status s = events::scan_history(log, p, *end, [&](const events::StoredRecord& r) {
    for (const auto& e : r.record.entries) {
      if (e.tenant != tenant) continue;
      auto env = entry_envelope(p, r, e);
      if (!env) return env.error();
      if ((until_seq && env->seq && *env->seq > *until_seq) || (until_ms && env->time_ms > *until_ms)) {
        past = true;
        return Status::error("past the moment");
      }
      moment->tenant.apply(*env);
      moment->seq = env->seq;
      moment->time_ms = env->time_ms;
    }
    pack_touched(moment->tenant);  // as replay does
    return Status::ok();
  });
  if (!s && !past) return s;
  return moment;
}

PartitionProcessor::PartitionProcessor(events::EventLog& log, projections::Store& store,
                                       partition_id p, ProcessorObserver& observer,
                                       size_t max_batch, bool clock_ticks,
                                       std::chrono::milliseconds projection_interval)
    : log_(log),
      store_(store),
      p_(p),
      observer_(observer),
      max_batch_(max_batch),
      clock_ticks_(clock_ticks),
      projection_interval_(projection_interval) {}

Status PartitionProcessor::recover() {
  invalidate();
  (void)finish_snapshot_write();  // the newest snapshot is the one to start from
  state_.clear();
  anchors_.clear();
  const auto started = std::chrono::steady_clock::now();
  recovery_ = Recovery{};
  // The snapshot first: what it knows of the history, the claim need not read again (Kafka
  // reads the journal to find where the ingest log resumes).
  const std::optional<SnapshotPoint> point = restore_snapshot();
  const events::KnownHistory from = point ? point->known : events::KnownHistory{};
  auto claim = log_.claim(p_, from);
  if (!claim) return claim.error();
  if (Status s = replay(log_, store_, p_, claim->epoch, state_, from, &recovery_.entries); !s)
    return s;
  // The views have seen the marker too.
  projections::ViewBatch marker_seen(store_);
  if (Status s = marker_seen.commit(p_, journal_pos{claim->epoch.value() + 1}); !s) return s;
  state_upto_ = journal_end_ = journal_pos{claim->epoch.value() + 1};
  sole_writer_ = true;
  entries_total_ = recovery_.entries;
  entries_at_try_ = entries_in_snapshot_ = 0;
  cursor_ = claim->resume;
  claim_ = *claim;
  keys_dropped_as_of_ = store_.changes();  // every key journaled so far is in the ids view
  recovered_ = true;
  const double took = seconds_since(started);
  log_line() << "omniroute: partition " << p_.value() << " recovered in " << took
             << " s: " << replayed_from(recovery_.snapshot, recovery_.entries) << "\n";
  observer_.on_recovery(p_, took, recovery_.entries, recovery_.snapshot.has_value());
  return Status::ok();
}

std::optional<SnapshotPoint> PartitionProcessor::restore_snapshot() {
  auto point = actors::restore_snapshot(log_, store_, p_, state_, recovery_.snapshot_unused);
  if (point) recovery_.snapshot = point->known.upto;
  return point;
}

Status PartitionProcessor::snapshot() { return take_snapshot(SnapshotTurn::Held()); }

Status PartitionProcessor::take_snapshot(SnapshotTurn::Held turn) {
  if (!claim_ || pending_)
    return Status::error("a snapshot is taken of a recovered state, its views written");
  if (!sole_writer_)
    return Status::error("another writer appended to the journal since this claim (at " +
                         std::to_string(claim_->epoch.value()) + ")");
  const auto started = std::chrono::steady_clock::now();
  auto fingerprint = fingerprint_before(log_, p_, state_upto_);
  if (!fingerprint) return fingerprint.error();
  const SnapshotPoint point{events::KnownHistory{state_upto_, claim_->epoch, cursor_},
                            *fingerprint};
  // The partition decides nothing while its state is encoded; the rest (the hash and header,
  // the flush and the file) is done in the background.
  std::string state = encode_state(state_, state_bytes_ + state_bytes_ / 8);
  state_bytes_ = state.size();
  const double pause = seconds_since(started);
  entries_at_try_ = entries_total_;
  // Written while the partition goes on (the file is replaced whole, so a recovery meanwhile
  // finds the one before); the one before has been, first. The views are made durable up to
  // the snapshot's position first: a recovery can start from a snapshot only where the views
  // it finds have what came before (replay writes the views from their applied position on),
  // and after a crash they are what RocksDB last flushed.
  (void)finish_snapshot_write();
  snapshot_write_ =
      std::async(std::launch::async, [this, started, point, pause, encoded = std::move(state),
                                      entries = entries_total_, turn = std::move(turn)]() mutable {
        // Moved out of the closure, which the future keeps until the partition's next snapshot
        // asks for its result: the turn is given back, and the state's bytes freed, as this
        // returns. (Kept in the closure, each partition held its last snapshot's bytes, about
        // 20 MB, until its next one.)
        const SnapshotTurn::Held held = std::move(turn);
        const std::string state = std::move(encoded);
        const std::string header = snapshot_header(p_, point, state);
        Status s = store_.flush();
        if (s) s = write_snapshot_file(store_.dir(), p_, header, state);
        if (s) {
          entries_in_snapshot_ = entries;
          observer_.on_snapshot(p_, header.size() + state.size(), seconds_since(started), pause);
        }
        return s;
      });
  return Status::ok();
}

Status PartitionProcessor::finish_snapshot_write() {
  if (!snapshot_write_.valid()) return Status::ok();
  Status s = snapshot_write_.get();
  if (!s)  // the journal has everything: only the next recovery is longer
    log_line() << "omniroute: partition " << p_.value()
               << ": cannot write a snapshot: " << s.message() << "\n";
  return s;
}

routing::Tenant& PartitionProcessor::pending_tenant(const std::string& name) {
  // A batch has facts of a few tenants: the pending ones are looked through first, by name
  // (a search of the tenants' map, then of a set of pending names, took 0.6-0.8% of the
  // ingest benchmark's samples, every fact).
  for (routing::Tenant* pending : pending_tenants_)
    if (pending->name() == name) return *pending;
  routing::Tenant& t = tenant_of(state_.tenants, name);
  pending_tenants_.push_back(&t);
  return t;
}

std::optional<PartitionProcessor::Decided> PartitionProcessor::decide(events::IngestRecord& rec) {
  const bool handed = rec.parsed.has_value();
  auto made = [&](std::optional<JournalRecord> r) -> std::optional<Decided> {
    if (!r) return std::nullopt;
    return Decided{std::move(*r), {}, {}, rec.appended_us};
  };
  // A handed-over fact is decided where it is, moved only into its outcome (through a result
  // of its own, each of its strings moved once more in calls to std::string's move: perf, 0.4%
  // of all samples in those calls here).
  std::optional<routing::Envelope> read;
  std::string canonical;  // of a fact read here, when the fast path read it: its text, to journal
  if (!handed) {
    events::json j;
    auto parsed = fact_of(rec, j, canonical);
    if (!parsed) return made(refuse_unreadable(rec, j, parsed.error()));
    read.emplace(std::move(parsed.value()));
  }
  routing::Envelope& fact = handed ? *rec.parsed : *read;
  // A key the front door found unknown as of keys_dropped_as_of_ or later is journaled only if
  // it is in recent_keys_: the keys dropped from memory were in the ids view when the door
  // looked. Any other key may be in that view.
  const bool looked_up = handed && rec.absent_as_of > 0 && rec.absent_as_of >= keys_dropped_as_of_;
  // Added if new: journaled now, or found in the ids view below.
  const bool fresh = recent_keys_.insert(fact.tenant, fact.id);
  if (!fresh || (!looked_up && store_.seq_of(fact.tenant, fact.id))) {
    fact_counts_.add(fact.type, "duplicate");
    return std::nullopt;
  }

  if (!failed_.empty())
    if (auto f = failed_.find(rec.offset.value()); f != failed_.end())
      return made(refuse_failed(rec, fact, f->second));
  Decided d;
  d.record.ingest = rec.offset;
  d.appended_us = rec.appended_us;
  // Taken: the journal entry is the payload with the seq spliced into the room left for it
  // (to_text). The record is not read again: a batch decided again reads its records anew.
  d.canonical = handed ? std::move(rec.payload) : std::move(canonical);
  routing::Tenant& t = pending_tenant(fact.tenant);
  deciding(rec.offset, [&] {
    // The fact moves into the outcome, and its id and type with it (no copies: a type is
    // longer than a string keeps inline): accepted, it is one of the entries; refused, the
    // refusal, the last entry, names it (its cause, and the type in its data).
    d.outcome = t.handle(std::move(fact));
    const routing::Outcome& outcome = d.outcome;
    const routing::Envelope& named = outcome.refused ? outcome.entries.back() : outcome.entries[*outcome.fact];
    if (fault_) fault_(named);
    fact_counts_.add(outcome.refused ? routing::str(named.data, "type") : named.type,
                     outcome.refused ? "refused" : "accepted");
  });
  return d;
}

void PartitionProcessor::prefetch(const std::vector<events::IngestRecord>& ingest, size_t from,
                                  size_t to) const {
  // Each fact's tenant, data, conversation and customer, found once for every stage.
  const routing::Tenant* tenants[stage_facts] = {};
  const events::json::object_t* data[stage_facts] = {};
  const std::string* conversations[stage_facts] = {};
  const std::string* customers[stage_facts] = {};
  for (size_t i = from; i < to; ++i) {
    const events::IngestRecord& rec = ingest[i];
    if (!rec.parsed) continue;  // parsed in decide(): nothing to look up before then
    const routing::Envelope& fact = *rec.parsed;
    // The front door wrote the fact on another core: its type is compared first thing
    // (Tenant::check), its text copied into the journal entry (entry_of), and its data's
    // members read for the stages below.
    __builtin_prefetch(fact.type.data());
    events::prefetch_bytes(rec.payload.data(), rec.payload.size());
    recent_keys_.prefetch(fact.tenant, fact.id);
    if (auto t = state_.tenants.find(fact.tenant); t != state_.tenants.end()) {
      tenants[i - from] = &t->second;
      data[i - from] = fact.data.get_ptr<const events::json::object_t*>();
      __builtin_prefetch(data[i - from]);
    }
  }
  // The data's members, then the conversation's and customer's ids in them (each a pointer
  // away): one after the other, each of these lookups missed the cache in turn (perf: 1.6% of
  // all samples on them).
  const size_t n = to - from;
  for (size_t k = 0; k < n; ++k)
    if (data[k]) events::prefetch_bytes(data[k]->data(), data[k]->size() * sizeof(*data[k]->data()));
  for (size_t k = 0; k < n; ++k)
    if (tenants[k]) {
      const routing::Envelope& fact = *ingest[from + k].parsed;
      conversations[k] = &routing::str(fact.data, "conversation");
      customers[k] = &routing::str(fact.data, "customer");
      __builtin_prefetch(conversations[k]);
      __builtin_prefetch(customers[k]);
    }
  for (int stage = 0; stage < routing::Tenant::fact_stages; ++stage)
    for (size_t k = 0; k < n; ++k)
      if (tenants[k]) tenants[k]->prefetch(*conversations[k], *customers[k], stage);
}

void PartitionProcessor::apply_to_statistics(Decided& d) {
  deciding(d.record.ingest, [&] {
    const routing::Outcome& outcome = d.outcome;
    for (size_t i = 0; i < outcome.entries.size(); ++i)
      if (kind_of_entry(outcome, i) != entry_kind::refusal) {
        state_.intervals.apply(outcome.entries[i]);
        state_.schedules.apply(outcome.entries[i]);
      }
  });
}

void PartitionProcessor::make_entries(Decided& d) {
  deciding(d.record.ingest, [&] {
    routing::Outcome& outcome = d.outcome;
    d.record.entries.reserve(outcome.entries.size());
    for (size_t i = 0; i < outcome.entries.size(); ++i) {
      const entry_kind kind = kind_of_entry(outcome, i);
      // The entry takes its tenant and key (copied, 15M of a host's 3,778M instructions in
      // the benchmark's callgrind run). A handed-over fact's text is the payload with its seq
      // spliced in.
      d.record.entries.push_back(
          entry_of(outcome.entries[i], kind, kind == entry_kind::fact ? std::move(d.canonical) : std::string()));
    }
    // A record the log cannot take would fail its append at every try, and the partition stop
    // there: the fact is refused instead (Kafka: one message a record, message.max.bytes).
    if (max_record_bytes_ != std::numeric_limits<size_t>::max())
      if (const size_t bytes = events::encoded_size(d.record); bytes > max_record_bytes_)
        throw std::length_error("its journal record would be " + std::to_string(bytes) +
                                " bytes, with its decisions; the event log takes at most " +
                                std::to_string(max_record_bytes_));
  });
}

JournalRecord PartitionProcessor::refuse_failed(const events::IngestRecord& rec, routing::Envelope& fact,
                                               const std::string& why) {
  JournalRecord r;
  r.ingest = rec.offset;
  routing::Tenant& t = pending_tenant(fact.tenant);
  fact_counts_.add(fact.type, "refused");
  auto refusal = t.refuse(fact.id, fact.type, fact.time_ms, "", "not processed: " + why);
  r.entries.push_back(entry_of(refusal, entry_kind::refusal));
  return r;
}

std::optional<JournalRecord> PartitionProcessor::refuse_unreadable(const events::IngestRecord& rec,
                                                                   const events::json& j,
                                                                   const events::event_error& why) {
  std::string tenant, id, type;
  if (j.is_object())
    tenant = j.value("tenant", ""), id = j.value("id", ""), type = j.value("type", "");
  // Only a producer other than omniroute's own front door can write such a record. It is
  // journaled as a refusal when it names a tenant and an id; otherwise it is dropped.
  fact_counts_.add(events::kind_of(type) == events::event_kind::unknown ? "unknown" : type, "refused");
  if (!events::valid_tenant(tenant) || !events::valid_id(id) || log_.partition_of(tenant) != p_) {
    observer_.on_error(p_, "ingest offset " + std::to_string(rec.offset.value()) +
                               " dropped: " + why.field + " " + why.reason);
    return std::nullopt;
  }
  // Repeated, it was refused (or accepted) already: one refusal per key, as for any fact.
  if (!recent_keys_.insert(tenant, id) || store_.seq_of(tenant, id)) return std::nullopt;
  JournalRecord r;
  r.ingest = rec.offset;
  routing::Tenant& t = tenant_of(state_.tenants, tenant);
  // The event's own time may be what is wrong with it: the refusal carries the append time.
  auto refusal = t.refuse(id, type, rec.appended_us / 1000, why.field, why.reason);
  r.entries.push_back(entry_of(refusal, entry_kind::refusal));
  return r;
}

result<size_t> PartitionProcessor::step(std::chrono::milliseconds wait) {
  for (;;) {
    try {
      return step_batch(wait);
    } catch (const FactFailed& f) {
      // Nothing of the batch is journaled. The state may be half changed by the fact: the next
      // round recovers it from the journal, decides the batch again and refuses the fact.
      invalidate();
      const std::string message = "ingest offset " + std::to_string(f.offset.value()) +
                                  ": deciding the fact failed (" + f.what + "); it is refused";
      log_line() << "omniroute: partition " << p_.value() << ": " << message << "\n";
      observer_.on_error(p_, message);
      failed_[f.offset.value()] = f.what;
    }
  }
}

void PartitionProcessor::report_lost(ingest_offset first) {
  const std::string message =
      "ingest records at offsets " + std::to_string(cursor_.value()) + " to " +
      std::to_string(first.value() - 1) +
      " were deleted before they were processed (the ingest topic's retention is shorter than "
      "the processors were behind): those events are lost; processing goes on from offset " +
      std::to_string(first.value());
  log_line() << "omniroute: partition " << p_.value() << ": " << message << "\n";
  observer_.on_error(p_, message);
}

result<size_t> PartitionProcessor::step_batch(std::chrono::milliseconds wait) {
  projections::stop_rocksdb_perf_counts();  // for the thread the host runs on this time
  if (!claim_)
    if (Status s = recover(); !s) return s;

  // With views owed, look for more work without waiting: when there is none, project now.
  std::vector<events::IngestRecord> ingest;
  const bool owe_views = pending_ != nullptr;
  if (Status s = log_.read_ingest(p_, cursor_, max_batch_, owe_views ? std::chrono::milliseconds(0) : wait, ingest); !s)
    return s;
  if (!ingest.empty() && ingest.front().offset > cursor_) report_lost(ingest.front().offset);
  if (ingest.empty()) {
    if (owe_views)
      if (Status s = project(); !s) {
        invalidate();
        return s;
      }
    // A lull (nothing came for the whole wait, the views already written): a snapshot half due
    // is taken now, while no fact waits behind it. Under load it comes at the interval, a pause
    // for the facts that arrive meanwhile. (At every moment the log ran dry, as first written,
    // a saturating load with short gaps took twice the snapshots, and their flushes.)
    if (!owe_views) snapshot_when_due(snapshot_every_ / 2);
    report_lag(cursor_);
    if (Status s = send_due_ticks(); !s) return s;
    return size_t{0};
  }

  std::vector<JournalRecord> records;
  std::vector<int64_t> appended_us;  // of each record's ingest record, for latency
  records.reserve(ingest.size());
  for (size_t from = 0; from < ingest.size(); from += stage_facts) {
    decided_.clear();
    const size_t to = std::min(ingest.size(), from + stage_facts);
    prefetch(ingest, from, to);
    for (size_t i = from; i < to; ++i)
      if (auto d = decide(ingest[i])) decided_.push_back(std::move(*d));
    for (auto& d : decided_) apply_to_statistics(d);
    for (auto& d : decided_) make_entries(d);
    // Taken in a pass of their own: right after make_entries(), the record's entries were read
    // whole as make_entries' last stores to them were still on their way (a store-forwarding
    // stall: 15% of this function's own samples).
    for (auto& d : decided_) {
      records.push_back(std::move(d.record));
      appended_us.push_back(d.appended_us);
    }
  }
  decided_.clear();
  // The results are string literals: their views' data are terminated.
  for (const auto& c : fact_counts_.counts()) observer_.on_facts(c.type, c.result, c.n);
  fact_counts_.clear();

  // Journal first, then the views: a crash in between leaves views behind the journal, which
  // recovery repairs. Any failure leaves the in-memory state ahead of the journal, so the next
  // step recovers it from the journal before going on.
  const ingest_offset next{ingest.back().offset.value() + 1};
  std::vector<journal_pos> positions;
  if (Status s = log_.append_journal(*claim_, records, next, &positions); !s) {
    invalidate();
    return s;
  }
  if (positions.size() != records.size()) {  // an engine's bug; the journal index needs them
    invalidate();
    return Status::error("the journal gave " + std::to_string(positions.size()) +
                         " positions for " + std::to_string(records.size()) + " records");
  }
  // Another writer's record among ours (a newer owner's marker: this one is a zombie, its state
  // ahead of the history) shows as a gap in our positions: no snapshot of this state.
  for (journal_pos at : positions) {
    if (at != journal_end_) sole_writer_ = false;
    journal_end_ = journal_pos{at.value() + 1};
  }
  cursor_ = next;
  if (!failed_.empty()) failed_.erase(failed_.begin(), failed_.lower_bound(next.value()));
  const auto appended = std::chrono::steady_clock::now();
  const int64_t now = events::wall_clock_us();
  size_t entries = 0;
  if (!records.empty()) {
    if (!pending_) {
      pending_ = spare_views_ ? std::move(spare_views_) : std::make_unique<projections::ViewBatch>(store_);
      pending_since_ = appended;
    }
    // The views take each record, and it is freed at once, while it is in the cache: freed
    // with the batch, its entries were read from memory a fourth time (perf: 39% of this
    // function's own samples were on the loads of their texts' pointers). The batch's entries
    // (up to 2,000 records) are out of the cache after its journal write: those of the record
    // a few ahead are fetched while one is taken (perf: 64% of put_record's samples were on
    // the load of an entry's kind, 1.1% of all).
    constexpr size_t ahead = 4;
    for (size_t i = 0; i < records.size(); ++i) {
      if (i + ahead < records.size()) {
        const auto& later = records[i + ahead].entries;
        events::prefetch_bytes(later.data(), later.size() * sizeof(events::JournalEntry));
      }
      const size_t n = records[i].entries.size();
      entries += n;
      pending_->put_record(records[i], p_, positions[i]);
      if (n > 1) observer_.on_decision_latency(static_cast<double>(now - appended_us[i]) / 1e6);
      records[i] = JournalRecord{};
    }
    if (!positions.empty()) pending_upto_ = journal_pos{positions.back().value() + 1};
  }
  entries_total_ += entries;
  observer_.on_journal_append(records.size(), entries);
  for (const routing::Tenant* tenant : pending_tenants_) {
    Anchor& a = anchors_[tenant->name()];
    a.event_ms = tenant->clock_ms();
    a.wall = appended;
  }
  if (pending_ && appended - pending_since_ >= projection_interval_)
    if (Status s = project(); !s) {
      invalidate();
      return s;
    }
  report_lag(next);
  if (Status s = send_due_ticks(); !s) return s;
  return ingest.size();
}

Status PartitionProcessor::project() {
  std::map<std::string, std::set<std::string>> touched_queues;  // per tenant, for metrics
  const auto failures = project_touched(state_, *pending_, &touched_queues);
  log_failures(p_, failures);
  for (const auto& f : failures) observer_.on_error(p_, f);
  // Metrics first: whoever sees the journal entries (the commit wakes long-polls) then finds
  // the gauges that include them.
  for (const routing::Tenant* t : pending_tenants_)
    observer_.on_tenant(t->name(), t->queue_stats(touched_queues[t->name()]),
                        t->agents_by_status());
  if (pending_upto_) {
    if (Status s = pending_->commit(p_, *pending_upto_); !s) return s;
    spare_views_ = std::move(pending_);  // committed, so empty: its buffers are kept
    state_upto_ = *pending_upto_;
  }
  pending_.reset();
  pending_upto_.reset();
  recent_keys_.close(store_.changes());
  while (recent_keys_.closed_keys() > recent_keys_limit_ && recent_keys_.closed_generations() > 1)
    keys_dropped_as_of_ = recent_keys_.drop_oldest();
  pending_tenants_.clear();
  snapshot_when_due(snapshot_every_);
  return Status::ok();
}

void PartitionProcessor::snapshot_when_due(size_t due) {
  if (snapshot_every_ == 0 || entries_since_try() < due) return;
  // While another partition's snapshot is taken or written, this one waits for a later
  // projection: under an even load the partitions' snapshots fall due together, and taken at
  // once, each encoding shared the cores with the others' (serve_load: each partition paused
  // 0.30-0.46 s for 0.10-0.15 s of its own CPU).
  SnapshotTurn::Held turn = turn_->try_take();
  if (!turn) return;
  if (Status s = take_snapshot(std::move(turn)); !s) {
    entries_at_try_ = entries_total_;  // tried again after as many, not at every projection
    log_line() << "omniroute: partition " << p_.value() << ": no snapshot: " << s.message() << "\n";
  }
}

void PartitionProcessor::invalidate() {
  claim_.reset();
  recovered_ = false;
  pending_.reset();  // recovery brings the views up to the journal
  pending_upto_.reset();
  recent_keys_.clear();
  keys_dropped_as_of_ = std::numeric_limits<uint64_t>::max();  // until recovery: look them up
  pending_tenants_.clear();
  fact_counts_.clear();  // of facts that are decided again
}

PartitionProcessor::~PartitionProcessor() {
  try {
    if (claim_ && (!pending_ || project()) && snapshot_every_ > 0 && entries_since_try() > 0)
      (void)snapshot();  // else the next recovery projects, or replays further
    (void)finish_snapshot_write();
  } catch (...) {
  }
}

Status PartitionProcessor::send_due_ticks() {
  if (!clock_ticks_) return Status::ok();
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> payloads;
  std::vector<std::string> tenants;
  for (auto& [name, tenant] : state_.tenants) {
    auto due = tenant.next_deadline();
    if (!due) continue;
    auto a = anchors_.find(name);
    if (a == anchors_.end()) a = anchors_.emplace(name, Anchor{tenant.clock_ms(), now, std::nullopt}).first;
    if (a->second.tick && a->second.tick->value() >= cursor_.value()) continue;  // one in flight
    const int64_t clock =
        a->second.event_ms +
        std::chrono::duration_cast<std::chrono::milliseconds>(now - a->second.wall).count();
    if (clock < *due) continue;
    routing::Envelope tick;
    tick.id = "tick-" + std::to_string(clock) + "-" + std::to_string(tenant.next_seq().value());
    tick.type = "clock.tick";
    tick.tenant = name;
    tick.time_ms = clock;
    payloads.push_back(events::to_text(tick));
    tenants.push_back(name);
  }
  if (payloads.empty()) return Status::ok();
  std::vector<ingest_offset> offsets;
  if (Status s = log_.append_ingest(p_, payloads, &offsets); !s) return s;
  for (size_t i = 0; i < tenants.size(); ++i) anchors_[tenants[i]].tick = offsets[i];
  return Status::ok();
}

Status drain(events::EventLog& log, projections::Store& store, partition_id p,
             size_t snapshot_every) {
  ProcessorObserver quiet;
  PartitionProcessor processor(log, store, p, quiet, 4096, false);
  processor.take_snapshots(snapshot_every);
  for (;;) {
    auto n = processor.step(std::chrono::milliseconds(0));
    if (!n) return n.error();
    if (*n == 0) return Status::ok();
  }
}

void PartitionProcessor::report_lag(ingest_offset next) {
  auto now = std::chrono::steady_clock::now();
  if (now - last_lag_report_ < std::chrono::milliseconds(500)) return;
  last_lag_report_ = now;
  if (auto end = log_.ingest_end(p_)) observer_.on_lag(p_, end->value() - next.value());
  observer_.on_recovery_backlog(p_, entries_total_ - entries_in_snapshot_);
}

}  // namespace omniroute::actors
