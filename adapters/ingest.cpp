#include "adapters/ingest.hpp"

#include <map>
#include <set>

namespace omniroute::adapters {

result<std::vector<IngestResult>> ingest(events::EventLog& log, const projections::Store& store,
                                         std::vector<events::Envelope>& envs) {
  std::vector<std::pair<std::string, std::string>> keys;
  keys.reserve(envs.size());
  for (const auto& e : envs) keys.emplace_back(e.tenant, e.id);
  const auto known = store.seqs_of(keys);
  std::vector<IngestResult> results(envs.size());
  std::map<int32_t, std::vector<std::string>> payloads;
  std::map<int32_t, std::vector<events::Envelope>> handed;
  std::map<int32_t, std::vector<size_t>> slots;
  std::set<std::pair<std::string, std::string>> in_batch;
  for (size_t i = 0; i < envs.size(); ++i) {
    IngestResult& r = results[i];
    if (known[i]) {
      r.duplicate = true;
      r.seq = known[i];
    } else if (!in_batch.insert(keys[i]).second) {
      r.duplicate = true;
    } else {
      r.partition = log.partition_of(envs[i].tenant);
      payloads[r.partition.value()].push_back(events::to_text(envs[i]));
      slots[r.partition.value()].push_back(i);
      const events::Envelope& e = envs[i];
      handed[r.partition.value()].push_back(
          events::Envelope{e.id, e.type, e.tenant, e.time_ms, std::move(envs[i].data), e.seq, e.cause});
    }
  }
  for (auto& [p, texts] : payloads) {
    std::vector<ingest_offset> offsets;
    if (Status s = log.append_validated(partition_id{p}, texts, std::move(handed[p]), &offsets); !s)
      return s;
    const auto& idx = slots[p];
    for (size_t k = 0; k < idx.size(); ++k) results[idx[k]].offset = offsets[k];
  }
  return results;
}

}  // namespace omniroute::adapters
