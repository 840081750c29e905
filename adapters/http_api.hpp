// The HTTP/JSON front door: ingest (POST /v1/events), queries of the views, the journal as a
// decision stream (long-poll, server-sent events), and the SRE endpoints (/metrics, /healthz,
// /readyz). The routes and answers are documented in docs/http-api.md.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "adapters/credentials.hpp"
#include "events/envelope.hpp"
#include "events/event_log.hpp"
#include "ops/metrics.hpp"
#include "projections/store.hpp"

namespace httplib {
class DataSink;
class Server;
struct Request;
struct Response;
}

namespace omniroute::adapters {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (see HttpApi::port)
  size_t max_body_bytes = 4u << 20;    // larger bodies are refused with 413
  size_t max_batch_events = 10000;     // larger batches are refused with 400
  // This node's address as other nodes reach it (HOST:PORT), on the Kafka engine: published
  // with the partitions it owns, so that the others forward their queries here. Empty: the
  // listening address, unless that is every address (0.0.0.0, ::), when nothing is published
  // and a query of another node's partition is answered 421.
  std::string advertise;
  // A connection holds a thread while it is open: between requests of a keep-alive connection
  // (until 5 s idle) and while a long-poll waits. One more connection than threads waits for a
  // thread: 5 s when all the others are idle keep-alive connections (64 threads: the 65th
  // connection of a client's pool waited 4.95 s).
  int threads = 256;
  // Journal long-polls that may wait at once (0: three quarters of the threads); the threads
  // beyond them stay free for ingest and queries. One more, with nothing yet to return, is
  // answered 503 too_many_waiting (Retry-After: 1) rather than take a thread a POST would wait
  // for. At most threads - 1.
  int max_waiting_polls = 0;
  // How long POST /v1/events waits for room when the partition hosts are behind
  // (EventLog::await_room) before it answers 503 and appends nothing.
  std::chrono::milliseconds backlog_wait{5000};
  // With credentials, every /v1 request needs a key (`Authorization: Bearer KEY`: 401 without
  // a known one), and names only tenants its key may use (403 otherwise; a batch with an event
  // of another tenant is refused whole). Without, the API is open to whoever reaches the port.
  // /metrics, /healthz and /readyz are open either way.
  std::shared_ptr<const Credentials> credentials;
};

// The general path of POST /v1/events (the fast path, events::read_valid_facts, takes plainly
// valid bodies without it): any body, read through a DOM of the whole of it and
// events::parse_fact, every problem named. The facts (and `batch`: the body was an array), or
// the refusal: its status, its answer, and the type of each refused event as the metrics count
// it ("unparseable" for a body that is not JSON).
struct BodyRefused {
  int status = 400;
  events::json answer;
  std::vector<std::string> refused_types;
};
result<std::vector<events::Envelope>, BodyRefused> read_events(std::string_view text,
                                                               size_t max_batch_events,
                                                               bool& batch);

class HttpApi {
 public:
  HttpApi(events::EventLog& log, projections::Store& store, ops::Metrics& metrics,
          std::function<std::optional<std::string>()> not_ready, HttpOptions options);
  ~HttpApi();

  // Binds and starts serving on a background thread.
  Status start();
  // Stops accepting and waits for the server thread. Idempotent.
  void stop();
  int port() const { return port_; }
  // Puts other keys in force (a reload of --credentials): requests from now on are checked
  // against them; those under way finish with the keys they started with. Only on a server
  // started with credentials.
  void set_credentials(std::shared_ptr<const Credentials> credentials);
  // For a node whose views cover only the partitions it owns (the Kafka engine): a query of a
  // tenant of a partition `owns` says is not this node's is answered 421 not_owned, naming the
  // partition, rather than from views that do not have it (a 404 that is not true); while the
  // node is not ready (joining, or its partitions moving), 503 not_ready. Set before start().
  void answer_only_owned(std::function<bool(partition_id)> owns) { owns_ = std::move(owns); }
  // With answer_only_owned, this node's address (HttpOptions::advertise, else the listening
  // address if it is not every address), once started; empty if it has none. A query of
  // another node's partition is then forwarded to the owner's address as the log knows it
  // (EventLog::owner_address), and its answer passed on with `X-Omniroute-Served-By: OWNER`
  // (a journal stream is relayed as the owner writes it). A forwarded request is never
  // forwarded again (a stale owner answers 421 itself, naming the owner it knows); an owner
  // that cannot be reached is answered 502 owner_unreachable.
  const std::string& advertised() const { return self_; }

 private:
  // An open GET /v1/journal/stream: what it sends, and where it is.
  struct JournalStream {
    std::string tenant;
    std::optional<seq_no> after;  // the last entry sent or passed over
    std::set<std::string> types;  // empty: all
    std::chrono::milliseconds heartbeat{15000};
    std::chrono::steady_clock::time_point next_beat;
    std::string authorization;                // the request's header, checked again on a reload
    std::shared_ptr<const Credentials> keys;  // the keys it was last checked against
  };

  void routes();
  // How long a stream (or a relayed one) with nothing to send waits before it looks again
  // whether its client is still there.
  static constexpr std::chrono::milliseconds gone_check{250};
  // Writes the stream's next events (or a heartbeat) to the sink, waiting for them; false when
  // the client has gone (found within gone_check while there is nothing to send). Ends the stream
  // (sink.done()) when stream_allowed() no longer holds.
  bool pump(JournalStream& stream, httplib::DataSink& sink) const;
  // Whether an open stream may go on: the server is not stopping, the key (after a reload of
  // the keys) still allows the tenant, and this node still owns the tenant's partition.
  bool stream_allowed(JournalStream& stream) const;
  // The caller's credential (null on a server without credentials), or nothing after
  // answering 401 for a missing or unknown key. It keeps the keys it came from alive.
  std::optional<std::shared_ptr<const Credential>> caller(const httplib::Request& req,
                                                          httplib::Response& res) const;
  // The request's ?tenant=, if it is given, valid and the caller's key may use it; else
  // nothing, after answering 401, 400 or 403.
  // A query of another node's partition is forwarded (see advertised()); with `relay_to`, the
  // tenant is returned and the owner's address set there instead.
  std::optional<std::string> tenant_param(const httplib::Request& req, httplib::Response& res,
                                          std::string* relay_to = nullptr) const;
  // Why this process is not ready (/readyz, omniroute_ready), nullopt when it is: the store's
  // refusal of writes, or empty while its partitions recover (or, Kafka, it owns none yet).
  std::optional<std::string> not_ready_because() const;
  // Answers `req` with what the node at `owner` (owner of partition p) answers it.
  void forward(const httplib::Request& req, httplib::Response& res, const std::string& owner,
               partition_id p) const;
  // A place among the waiting: a long-poll with nothing yet to return, or an open stream (each
  // holds an HTTP thread). Given back when the last holder lets it go.
  struct WaitingPlace;
  // Takes a place (a stream's counts among the streams too), or answers 503 too_many_waiting
  // (Retry-After: 1) when as many are taken as poll_limit_ allows, and gives nothing.
  std::shared_ptr<WaitingPlace> take_place(httplib::Response& res, bool stream);
  // Answers a journal stream with the owner's stream of it, relayed as it comes; `place` is
  // held until the relay ends.
  struct Relay;
  void relay_stream(const httplib::Request& req, httplib::Response& res, const std::string& owner,
                    partition_id p, std::shared_ptr<WaitingPlace> place);

  events::EventLog& log_;
  projections::Store& store_;
  ops::Metrics& metrics_;
  std::function<std::optional<std::string>()> not_ready_;  // why the processor is not ready
  std::function<bool(partition_id)> owns_;
  std::string self_;  // advertised(): set by start(), before any request
  HttpOptions options_;
  std::shared_ptr<const Credentials> credentials_;  // atomic_load/atomic_store only
  std::unique_ptr<httplib::Server> server_;
  struct OwnerClients;  // connections kept to the owners, for forward()
  std::unique_ptr<OwnerClients> owner_clients_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  int poll_limit_ = 1;                 // places among the waiting (set by routes())
  std::atomic<int> waiting_polls_{0};  // places taken: long-polls waiting and streams open
  std::atomic<int> streams_{0};        // of them, streams
};

}  // namespace omniroute::adapters
