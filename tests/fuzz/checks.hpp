// Properties of omniroute's readers of untrusted bytes, checked for any input: the request
// bodies of POST /v1/events, the journal's envelope texts, requirement expressions, policies,
// CSV rows, journal records, stored documents and snapshots; and the routing engine, fed
// sequences of facts the bytes choose. Each check answers the problem it
// found (empty: none). The fuzz targets (tests/fuzz/fuzz_target.cpp, built with clang's
// libFuzzer by tests/fuzz/run) call them on generated inputs; the corpus test (ctest `fuzz_corpus`)
// calls them on every input kept under tests/fuzz/corpus/TARGET/, the seeds and what fuzzing found.
//
// What every check asks: nothing throws, and what is refused is refused with an error that can
// be answered (its JSON dumps). Beyond that, per target:
//  - events: the front door's fast path (read_valid_facts) takes only bodies the general path
//    (a DOM, then parse_fact per event) accepts, and reads the same envelopes and canonical
//    texts; every accepted fact's canonical text reads back (read_envelope_text, as replay
//    reads the journal) as the same envelope, with a seq spliced in too.
//  - envelope: read_plain_envelope reads what read_envelope_text_by_dom reads.
//  - expression: a requirement compiles or names a position inside the text (or just past it);
//    a compiled one evaluates against documents of any shape.
//  - policy: a policy document parses or names where it is wrong.
//  - csv: rows of an import (with the anonymous bank's mapping) convert to events, are
//    validated as the front door does, or are named bad.
//  - journal_record: a record decodes or is named corrupt; a decoded one encodes to bytes that
//    decode to the same record.
//  - compact_doc: a stored document renders, or is named unreadable; what renders is a JSON object.
//  - time: an RFC 3339 time parses or not; a parsed one formats to text that parses back to it.
//  - routing: the bytes choose queues, agents and a sequence of facts; the routing engine's
//    invariants hold after every fact, and the journal replays to the same views
//    (tests/actors/invariants.hpp, whose seeded sequences ctest's routing_invariants runs).
//  - snapshot: a snapshot's state (with a header whose hash fits) restores, or is named unusable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace omniroute::fuzz {

// The targets' names, as tests/fuzz/corpus/ names their directories.
const std::vector<std::string>& targets();

// The problem `input` shows for `target` (empty: none; an unknown target is a problem).
std::string check(std::string_view target, std::string_view input);

}  // namespace omniroute::fuzz
