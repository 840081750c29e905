#include "adapters/http_api.hpp"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "actors/journey.hpp"
#include "adapters/ingest.hpp"
#include "events/envelope.hpp"
#include "events/fact_reader.hpp"
#include "events/log_line.hpp"
#include "events/time.hpp"
#include "events/type_counts.hpp"
#include "projections/queue_plan.hpp"

namespace omniroute::adapters {
namespace {

using events::json;

// The fields of one ingest result after its id: fixed pieces and integers, at most 114 bytes
// (and room for max_number_bytes after the longest run before an integer, 72).
struct ResultText {
  char text[72 + events::max_number_bytes];
  size_t size = 0;
  template <size_t N>
  void put(const char (&piece)[N]) {
    std::memcpy(text + size, piece, N - 1);
    size += N - 1;
  }
  template <size_t N>
  void field(const char (&key)[N], int64_t n) {
    put(key);
    size += events::write_integer(n, text + size);  // 20 digits and a sign at most
  }
};

// The header a forwarded query carries: the address of the node that forwarded it.
constexpr const char* forwarded_by = "X-Omniroute-Forwarded-By";

// How the server's listening socket is set up. httplib's default binds with SO_REUSEPORT, which
// lets a second server bind the same port and the kernel split the connections between the two:
// a server started twice by mistake (with another --data) took half of the events into its own
// store. SO_REUSEADDR alone still lets a restarted server bind while the last one's connections
// linger in TIME_WAIT.
//
// The rest is for the connections accepted from it, which inherit it (Linux): a client that
// vanished without closing (its machine gone, a NAT or VPN that dropped the flow) is otherwise
// found only when the kernel gives up retransmitting to it, about 15 minutes
// (tcp_retries2), its thread and its place among the long-polls held meanwhile. Data unacknowledged
// for 30 s ends the connection (TCP_USER_TIMEOUT: a stream's heartbeat is such data); an idle one
// is probed from 60 s on, every 10 s, and (with TCP_USER_TIMEOUT set, Linux counts it instead
// of the probes) ended once 30 s have passed without an answer.
void listening_options(socket_t sock) {
  const int yes = 1, unacknowledged_ms = 30000, idle_s = 60, probe_every_s = 10, probes = 3;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  setsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &yes, sizeof yes);
  setsockopt(sock, IPPROTO_TCP, TCP_USER_TIMEOUT, &unacknowledged_ms, sizeof unacknowledged_ms);
  setsockopt(sock, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  setsockopt(sock, IPPROTO_TCP, TCP_KEEPINTVL, &probe_every_s, sizeof probe_every_s);
  setsockopt(sock, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

// An error may quote what the request held (an id, a path, the parser's view of a body), which
// need not be UTF-8: such bytes are answered as U+FFFD, not refused by the serializer (that
// refusal, thrown, turned a 400 into a 500 "internal").
void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

json error_answer(const std::string& error, json extra) {
  json body = {{"error", error}};
  if (extra.is_object()) body.update(extra);
  return body;
}

void send_error(httplib::Response& res, int status, const std::string& error, json extra = {}) {
  send_json(res, status, error_answer(error, std::move(extra)));
}

// A view document the partition host could not render (a bug: project_touched) is answered
// as what it is, 500 view_unavailable, rather than as the entity's view.
bool unrendered(httplib::Response& res, const json& doc, const char* what, const std::string& id,
                const std::string& tenant) {
  const json* error = events::member(doc, "view_error");
  if (!error) return false;
  send_error(res, 500, "view_unavailable", {{what, id}, {"tenant", tenant}, {"reason", *error}});
  return true;
}

// A decimal integer that is the whole of `text`, or nothing.
std::optional<int64_t> integer_of(const std::string& text) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<int64_t> int_param(const httplib::Request& req, httplib::Response& res,
                                 const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  if (!req.has_param(name)) return fallback;
  if (auto v = integer_of(req.get_param_value(name)); v && *v >= lo && *v <= hi) return v;
  send_error(res, 400, "invalid_parameter",
             {{"parameter", name},
              {"reason", "must be an integer from " + std::to_string(lo) + " to " +
                             std::to_string(hi)}});
  return std::nullopt;
}

// An RFC 3339 query parameter as ms since the epoch, `fallback` when absent, or an error answer.
std::optional<int64_t> time_param(const httplib::Request& req, httplib::Response& res,
                                  const char* name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  if (auto ms = events::parse_rfc3339_ms(req.get_param_value(name))) return *ms;
  send_error(res, 400, "invalid_parameter",
             {{"parameter", name}, {"reason", "must be an RFC 3339 time, e.g. 2026-11-20T10:00:00Z"}});
  return std::nullopt;
}

std::optional<double> double_param(const httplib::Request& req, httplib::Response& res,
                                   const char* name, double fallback, double lo, double hi) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size() && v >= lo && v <= hi) return v;
  send_error(res, 400, "invalid_parameter",
             {{"parameter", name},
              {"reason", "must be a number from " + std::to_string(lo) + " to " + std::to_string(hi)}});
  return std::nullopt;
}

// The utc_offset parameter (default UTC) in ms east of UTC, or an error answer.
std::optional<int64_t> utc_offset_param(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_param("utc_offset")) return 0;
  if (auto ms = events::parse_utc_offset_ms(req.get_param_value("utc_offset"))) return ms;
  send_error(res, 400, "invalid_parameter",
             {{"parameter", "utc_offset"}, {"reason", "must be like %2B02:00 or -05:30"}});
  return std::nullopt;
}

json interval_json(const projections::IntervalRow& r, int64_t interval_ms) {
  const auto& c = r.counters;
  json j = {{"start", events::format_rfc3339_ms(r.bucket_ms)},
            {"end", events::format_rfc3339_ms(r.bucket_ms + interval_ms)},
            {"channel", r.channel}};
  j.update(c.to_json());
  const int64_t finished = c.answered + c.abandoned;
  const int64_t sl_base = c.answered + c.abandoned - c.abandoned_within_threshold;
  j["service_level"] = sl_base > 0 ? json(static_cast<double>(c.answered_within_threshold) /
                                          static_cast<double>(sl_base))
                                   : json(nullptr);
  j["mean_wait_s"] = finished > 0 ? json(static_cast<double>(c.wait_time_ms) / 1000.0 /
                                         static_cast<double>(finished))
                                  : json(nullptr);
  j["aht_s"] = c.answered > 0 ? json(static_cast<double>(c.handle_time_ms) / 1000.0 /
                                     static_cast<double>(c.answered))
                              : json(nullptr);
  return j;
}

std::string type_label(const json& event) {
  if (event.is_object() && event.contains("type") && event["type"].is_string()) {
    const auto& t = event["type"].get_ref<const std::string&>();
    if (events::kind_of(t) != events::event_kind::unknown) return t;
  }
  return "unknown";
}

// Why a key is refused for a tenant (403 forbidden).
std::string forbidden_reason(const Credential& who, const std::string& tenant) {
  return "the key '" + who.name + "' may not use tenant '" + tenant + "'";
}

// The answer refusing a POST /v1/events for the events in `errors` (at least one): all or
// nothing, the whole request refused and nothing appended. The first error, with all of them.
json refusal_of(json errors) {
  json answer = errors[0];
  answer["errors"] = std::move(errors);
  answer["batch"] = "all_or_nothing";
  answer["accepted"] = 0;
  return answer;
}

void refuse_request(httplib::Response& res, int status, json errors) {
  send_json(res, status, refusal_of(std::move(errors)));
}

// Whether every event of a request is of a tenant the caller's key may use. If not, answers 403
// naming each event that is not (all or nothing, as for invalid events: nothing is appended),
// and counts those as refused.
bool writes_only_allowed(const Credential& who, const std::vector<events::Envelope>& envs, bool batch,
                         ops::Metrics& metrics, httplib::Response& res) {
  json errors = json::array();
  for (size_t i = 0; i < envs.size(); ++i) {
    if (who.allows(envs[i].tenant)) continue;
    json e = {{"error", "forbidden"},
              {"id", envs[i].id},
              {"tenant", envs[i].tenant},
              {"reason", forbidden_reason(who, envs[i].tenant)}};
    if (batch) e["index"] = i;
    errors.push_back(std::move(e));
    metrics.received(envs[i].type, "refused");
  }
  if (errors.empty()) return true;
  refuse_request(res, 403, std::move(errors));
  return false;
}

}  // namespace

result<std::vector<events::Envelope>, BodyRefused> read_events(std::string_view text,
                                                               size_t max_batch_events,
                                                               bool& batch) {
  auto refused = [](json answer, std::vector<std::string> types) {
    return BodyRefused{400, std::move(answer), std::move(types)};
  };
  if (events::nesting_exceeds(text))
    return refused(error_answer("too_deep",
                                {{"reason", "JSON nested deeper than " +
                                                std::to_string(events::max_json_depth) + " levels"},
                                 {"accepted", 0}}),
                   {"unparseable"});
  auto parsed_body = events::parse_json(text);
  if (!parsed_body)
    return refused(error_answer("malformed_json", {{"reason", parsed_body.error().reason},
                                                   {"byte", parsed_body.error().byte},
                                                   {"accepted", 0}}),
                   {"unparseable"});
  json body = std::move(*parsed_body);
  batch = body.is_array();
  if (batch && body.empty())
    return refused(error_answer("empty_batch", {{"reason", "the array holds no events"}}), {});
  if (batch && body.size() > max_batch_events)
    return refused(error_answer("batch_too_large",
                                {{"limit_events", max_batch_events}, {"events", body.size()}}),
                   {});
  const size_t n = batch ? body.size() : 1;
  std::vector<events::Envelope> envs;
  envs.reserve(n);
  json errors = json::array();
  std::vector<std::string> types;
  for (size_t i = 0; i < n; ++i) {
    json& ev = batch ? body[i] : body;
    auto parsed = events::parse_fact(std::move(ev));  // moves only data out of ev
    if (!parsed) {
      events::event_error err = parsed.error();
      if (batch) err.index = i;
      errors.push_back(err.to_json());
      types.push_back(type_label(ev));
      continue;
    }
    envs.push_back(std::move(parsed.value()));
  }
  if (!errors.empty()) return refused(refusal_of(std::move(errors)), std::move(types));
  return envs;
}

HttpApi::HttpApi(events::EventLog& log, projections::Store& store, ops::Metrics& metrics,
                 std::function<std::optional<std::string>()> not_ready, HttpOptions options)
    : log_(log),
      store_(store),
      metrics_(metrics),
      not_ready_(std::move(not_ready)),
      options_(std::move(options)),
      credentials_(std::move(options_.credentials)),  // reloads replace it: not kept twice
      server_(std::make_unique<httplib::Server>()),
      owner_clients_(std::make_unique<OwnerClients>()) {
  routes();
}

HttpApi::~HttpApi() { stop(); }

void HttpApi::set_credentials(std::shared_ptr<const Credentials> credentials) {
  std::atomic_store(&credentials_, std::move(credentials));
  store_.wake_waiters();  // open streams check their keys again now, not at their next event
}

std::optional<std::shared_ptr<const Credential>> HttpApi::caller(const httplib::Request& req,
                                                                 httplib::Response& res) const {
  // The keys in force as the request came: a reload meanwhile does not free them under it.
  const std::shared_ptr<const Credentials> keys = std::atomic_load(&credentials_);
  if (!keys) return std::shared_ptr<const Credential>();
  const std::string header = req.get_header_value("Authorization");
  const std::string_view key = bearer_key(header);
  if (const Credential* who = keys->find(key)) return std::shared_ptr<const Credential>(keys, who);
  res.set_header("WWW-Authenticate", "Bearer realm=\"omniroute\"");
  send_error(res, 401, "unauthorized",
             {{"reason", header.empty()  ? "send the API key as Authorization: Bearer KEY"
                         : key.empty()   ? "the Authorization header must be Bearer KEY"
                                         : "unknown key"}});
  return std::nullopt;
}

std::optional<std::string> HttpApi::tenant_param(const httplib::Request& req,
                                                 httplib::Response& res,
                                                 std::string* relay_to) const {
  auto who = caller(req, res);
  if (!who) return std::nullopt;
  if (!req.has_param("tenant")) {
    send_error(res, 400, "missing_parameter",
               {{"parameter", "tenant"}, {"reason", "add ?tenant=NAME"}});
    return std::nullopt;
  }
  std::string tenant = req.get_param_value("tenant");
  if (!events::valid_tenant(tenant)) {
    send_error(res, 400, "invalid_parameter",
               {{"parameter", "tenant"},
                {"reason", std::string("must be ") + events::tenant_rule}});
    return std::nullopt;
  }
  if (*who && !(*who)->allows(tenant)) {
    send_error(res, 403, "forbidden",
               {{"tenant", tenant},
                {"reason", forbidden_reason(**who, tenant)}});
    return std::nullopt;
  }
  if (!owns_) return tenant;  // the views cover every partition (the embedded engine)
  if (const partition_id p = log_.partition_of(tenant); !owns_(p)) {
    if (not_ready_()) {  // warming up, joining the group, or between owners: ask again soon
      res.set_header("Retry-After", "1");
      send_error(res, 503, "not_ready",
                 {{"tenant", tenant},
                  {"partition", p.value()},
                  {"reason", "this node is taking its partitions (see /readyz): ask again"}});
    } else {
      std::optional<std::string> owner = self_.empty() ? std::nullopt : log_.owner_address(p);
      if (owner == self_) owner.reset();  // a claim of this node's the group has since moved
      // Forwarded once at most: a node that gets a forwarded query of a partition it does not
      // own (the owners' addresses trail a move by a moment) answers 421 itself.
      if (owner && !req.has_header(forwarded_by)) {
        if (relay_to) {
          *relay_to = *owner;
          return tenant;
        }
        forward(req, res, *owner, p);
        return std::nullopt;
      }
      json answer = {{"tenant", tenant},
                     {"partition", p.value()},
                     {"reason", "another node owns partition " + std::to_string(p.value()) +
                                    " of this tenant and has its views: ask that node"}};
      if (owner) answer["owner"] = *owner;
      send_error(res, 421, "not_owned", std::move(answer));
    }
    return std::nullopt;
  }
  return tenant;
}

namespace {

// A client of the node at `owner` for forwarding.
std::unique_ptr<httplib::Client> owner_client(const std::string& owner) {
  auto client = std::make_unique<httplib::Client>("http://" + owner);
  client->set_connection_timeout(2, 0);
  client->set_read_timeout(40, 0);  // a journal long-poll waits up to 30 s; a stream beats
  client->set_tcp_nodelay(true);
  return client;
}

// What a forwarded request carries: this node's address, and the headers the owner reads as
// this node would have (the key, a stream's position).
httplib::Headers forwarded_headers(const httplib::Request& req, const std::string& self) {
  httplib::Headers headers = {{forwarded_by, self}};
  for (const char* name : {"Authorization", "Last-Event-ID"})
    if (req.has_header(name)) headers.emplace(name, req.get_header_value(name));
  return headers;
}

// Passes the owner's answer on as this node's, saying who served it.
void pass_on(const httplib::Response& answer, const std::string& owner, httplib::Response& res) {
  res.status = answer.status;
  for (const char* name : {"Retry-After", "WWW-Authenticate"})
    if (answer.has_header(name)) res.set_header(name, answer.get_header_value(name));
  res.set_header("X-Omniroute-Served-By", owner);
  res.set_content(answer.body, answer.get_header_value("Content-Type"));
}

void send_unreachable(httplib::Response& res, const std::string& owner, partition_id p,
                      const std::string& why) {
  send_error(res, 502, "owner_unreachable",
             {{"partition", p.value()},
              {"owner", owner},
              {"reason", "the node that owns the partition did not answer (" + why +
                             "): ask again, or ask it"}});
}

}  // namespace

// Clients of the owners, each keeping its connection open between forwarded queries: a
// connection per query costs a handshake and a thread of the owner's each, and leaves a
// socket in TIME_WAIT for a minute (a node forwarding thousands of queries a second would
// keep tens of thousands). A client serves one query at a time: as many are made as queries
// go to an owner at once, and up to kept_per_owner kept (each holds a thread of the owner's
// while it is open, until it has been idle 5 s there).
struct HttpApi::OwnerClients {
  static constexpr size_t kept_per_owner = 16;
  std::mutex mu;
  std::map<std::string, std::vector<std::unique_ptr<httplib::Client>>> idle;

  // A kept client of `owner`, if there is one (then `kept`), else a new one.
  std::unique_ptr<httplib::Client> take(const std::string& owner, bool& kept) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto& clients = idle[owner];
      kept = !clients.empty();
      if (kept) {
        auto client = std::move(clients.back());
        clients.pop_back();
        return client;
      }
    }
    return fresh(owner);
  }
  static std::unique_ptr<httplib::Client> fresh(const std::string& owner) {
    auto client = owner_client(owner);
    client->set_keep_alive(true);
    return client;
  }
  void give_back(const std::string& owner, std::unique_ptr<httplib::Client> client) {
    std::lock_guard<std::mutex> lock(mu);
    auto& clients = idle[owner];
    if (clients.size() < kept_per_owner) clients.push_back(std::move(client));
  }
};

void HttpApi::forward(const httplib::Request& req, httplib::Response& res, const std::string& owner,
                      partition_id p) const {
  const httplib::Headers headers = forwarded_headers(req, self_);
  bool kept = false;
  auto client = owner_clients_->take(owner, kept);
  auto answer = client->Get(req.target.c_str(), headers);
  if (!answer && kept) {  // the owner closed the kept connection as it was used: a new one
    client = OwnerClients::fresh(owner);
    answer = client->Get(req.target.c_str(), headers);
  }
  if (!answer) return send_unreachable(res, owner, p, httplib::to_string(answer.error()));
  pass_on(*answer, owner, res);
  owner_clients_->give_back(owner, std::move(client));
}

// The owner's stream, read on a thread of its own, and what it sent that the client has not
// been given yet.
struct HttpApi::Relay {
  std::unique_ptr<httplib::Client> client;
  std::thread reader;
  std::mutex mu;
  std::condition_variable changed;
  std::optional<httplib::Response> head;  // the owner's status and headers, once they came
  std::string pending;                    // of its body, not written on yet
  bool ended = false;
  bool cancelled = false;
  std::string error;  // why the owner could not be read, when it could not

  ~Relay() {
    {
      std::lock_guard<std::mutex> lock(mu);
      cancelled = true;
    }
    client->stop();  // ends a read under way
    if (reader.joinable()) reader.join();
  }
};

void HttpApi::relay_stream(const httplib::Request& req, httplib::Response& res,
                           const std::string& owner, partition_id p,
                           std::shared_ptr<WaitingPlace> place) {
  auto relay = std::make_shared<Relay>();
  relay->client = owner_client(owner);
  relay->client->set_read_timeout(70, 0);  // longer than the longest heartbeat (60 s)
  Relay* r = relay.get();
  r->reader = std::thread([r, target = req.target, headers = forwarded_headers(req, self_)] {
    auto done = r->client->Get(
        target.c_str(), headers,
        [r](const httplib::Response& head) {
          std::lock_guard<std::mutex> lock(r->mu);
          r->head = head;
          r->changed.notify_all();
          return !r->cancelled;
        },
        [r](const char* data, size_t n) {
          std::lock_guard<std::mutex> lock(r->mu);
          r->pending.append(data, n);
          r->changed.notify_all();
          return !r->cancelled;
        });
    std::lock_guard<std::mutex> lock(r->mu);
    r->ended = true;
    if (!done) r->error = httplib::to_string(done.error());
    r->changed.notify_all();
  });
  std::unique_lock<std::mutex> lock(r->mu);
  r->changed.wait(lock, [&] { return r->head || r->ended; });
  if (!r->head) return send_unreachable(res, owner, p, r->error);
  if (r->head->status != 200) {  // an error, answered whole: passed on as it is
    r->changed.wait(lock, [&] { return r->ended; });
    httplib::Response answer = *r->head;
    answer.body = std::move(r->pending);
    return pass_on(answer, owner, res);
  }
  lock.unlock();
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_header("X-Omniroute-Served-By", owner);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, relay](size_t, httplib::DataSink& sink) {
        std::string out;
        {
          std::unique_lock<std::mutex> lock(relay->mu);
          // The owner beats at least every heartbeat; the bound is for this server stopping,
          // and for the client going.
          relay->changed.wait_for(lock, gone_check,
                                  [&] { return !relay->pending.empty() || relay->ended; });
          out.swap(relay->pending);
          if (out.empty() && (relay->ended || stopping_)) {
            sink.done();  // the owner ended it (it stopped, the partition moved): reconnect
            return true;
          }
        }
        if (out.empty()) return sink.is_writable();  // false: the client has gone
        return sink.write(out.data(), out.size());
      },
      // The response's end ends the relay, then lets the place go.
      [relay, place = std::move(place)](bool) {});
}

struct HttpApi::WaitingPlace {
  HttpApi& api;
  bool stream;
  WaitingPlace(HttpApi& api, bool stream) : api(api), stream(stream) {}
  WaitingPlace(const WaitingPlace&) = delete;  // one place, given back once
  WaitingPlace& operator=(const WaitingPlace&) = delete;
  ~WaitingPlace() {
    if (stream) --api.streams_;
    --api.waiting_polls_;
  }
};

std::shared_ptr<HttpApi::WaitingPlace> HttpApi::take_place(httplib::Response& res, bool stream) {
  if (++waiting_polls_ > poll_limit_) {
    --waiting_polls_;
    res.set_header("Retry-After", "1");
    send_error(
        res, 503, "too_many_waiting",
        {{"limit", poll_limit_},
         {"reason", stream ? "as many journal long-polls and streams are open as the server "
                             "allows: try again after a second, or share one stream per tenant"
                           : "as many journal long-polls are waiting as the server allows: "
                             "poll again after a second, or share one poll per tenant"}});
    return nullptr;
  }
  if (stream) ++streams_;
  return std::make_shared<WaitingPlace>(*this, stream);
}

bool HttpApi::stream_allowed(JournalStream& stream) const {
  if (stopping_) return false;
  // A reload of the keys applies to open streams too: one whose key is gone, or no longer
  // allows the tenant, ends (the client's next request is answered 401 or 403).
  const std::shared_ptr<const Credentials> keys = std::atomic_load(&credentials_);
  if (keys != stream.keys) {
    const Credential* who = keys ? keys->find(bearer_key(stream.authorization)) : nullptr;
    if (keys && (!who || !who->allows(stream.tenant))) return false;
    stream.keys = keys;
  }
  // A node that no longer owns the tenant's partition (the Kafka engine's group moved it) has
  // views that no longer grow: the stream ends, and the client asks again (421 names the owner's
  // partition).
  return !owns_ || owns_(log_.partition_of(stream.tenant));
}

bool HttpApi::pump(JournalStream& stream, httplib::DataSink& sink) const {
  for (;;) {
    if (!stream_allowed(stream)) {
      sink.done();
      return true;
    }
    const uint64_t seen = store_.changes();
    const std::vector<std::string> texts = store_.journal_after(stream.tenant, stream.after, 100);
    std::string out;
    for (const std::string& text : texts) {
      auto e = events::read_envelope_text(text);  // the journal's own texts: its seq and type
      if (!e || !e->seq) {
        log_line() << "omniroute: journal stream of " << stream.tenant << ": an entry after seq "
                   << (stream.after ? std::to_string(stream.after->value()) : "-")
                   << " cannot be read; the stream ends\n";
        return false;
      }
      stream.after = e->seq;
      if (!stream.types.empty() && !stream.types.count(e->type)) continue;
      out += "id: " + std::to_string(stream.after->value()) + "\nevent: " + e->type + "\ndata: ";
      out += text;  // one line: the journal's texts are compact JSON
      out += "\n\n";
    }
    const auto now = std::chrono::steady_clock::now();
    if (out.empty() && now >= stream.next_beat) out = ": heartbeat\n\n";
    if (!out.empty()) {
      stream.next_beat = now + stream.heartbeat;
      return sink.write(out.data(), out.size());  // false when the client has gone
    }
    if (texts.empty()) {
      // Nothing to send: a client that has closed its end is found now (the socket reads as
      // ended), not at the next heartbeat's write, up to a minute away, its thread and place
      // held until then.
      if (!sink.is_writable()) return false;
      store_.wait_for_change(
          seen,
          std::min(std::chrono::duration_cast<std::chrono::milliseconds>(stream.next_beat - now) +
                       std::chrono::milliseconds(1),
                   gone_check));
    }
  }
}

void HttpApi::routes() {
  auto& svr = *server_;
  const int threads = options_.threads;
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_payload_max_length(options_.max_body_bytes);
  // Journal long-polls that may wait at once (HttpOptions::max_waiting_polls).
  poll_limit_ =
      std::max(1, options_.max_waiting_polls > 0 ? std::min(options_.max_waiting_polls, threads - 1)
                                                 : threads * 3 / 4);
  svr.set_socket_options(listening_options);
  svr.set_keep_alive_max_count(10000);
  // httplib writes an answer's headers and its body in separate sends: with Nagle's algorithm
  // on, the body waits for the peer's delayed ACK of the headers, 40 ms on Linux, on every
  // answer too short to fill a segment (one event posted, a journal read, a view).
  svr.set_tcp_nodelay(true);

  // Counts every answer by route pattern; fills in a JSON body for errors httplib raises itself
  // (413 for an oversized body, 404 for an unknown route, 400 for a malformed request).
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    // A path no route matched is "unmatched", whatever it is: each path a label of its own
    // would let any client add series to the metrics without end.
    std::string route = req.matches.empty() ? "unmatched" : req.path;
    // The id becomes {id}; what follows it stays (/v1/queues/{id}/intervals).
    for (const char* prefix : {"/v1/conversations/", "/v1/agents/", "/v1/queues/", "/v1/customers/",
                               "/v1/decisions/", "/v1/policies/"})
      if (!req.matches.empty() && req.path.rfind(prefix, 0) == 0) {
        const size_t rest = req.path.find('/', std::char_traits<char>::length(prefix));
        route = std::string(prefix) + "{id}" + (rest == std::string::npos ? "" : req.path.substr(rest));
      }
    metrics_.http_request(route, res.status);
  });
  svr.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      if (req.path == "/v1/events") metrics_.received("unparseable", "refused");
      // cpp-httplib caps form-encoded bodies at 8 KiB whatever the limit (curl -d sends that
      // content type unless told otherwise).
      if (req.get_header_value("Content-Type").find("application/x-www-form-urlencoded") == 0)
        send_error(res, 413, "body_too_large",
                   {{"limit_bytes", 8192},
                    {"reason", "form-encoded bodies are limited to 8 KiB: send the JSON with "
                               "Content-Type: application/json"}});
      else
        send_error(res, 413, "body_too_large",
                   {{"limit_bytes", options_.max_body_bytes},
                    {"reason", "split the batch into smaller requests"}});
    } else if (res.status == 404) {
      send_error(res, 404, "not_found", {{"path", req.path}});
    } else {
      send_error(res, res.status, "bad_request");
    }
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, "internal", {{"reason", what}});
  });

  svr.Post("/v1/events", [this](const httplib::Request& req, httplib::Response& res) {
    projections::stop_rocksdb_perf_counts();
    auto who = caller(req, res);
    if (!who) return;
    std::vector<events::Envelope> envs;
    std::vector<std::string> texts;  // their canonical texts, when the fast path wrote them
    bool batch = false;
    // The fast path takes a body of plainly valid events without a DOM of the whole body; the
    // general path (read_events) reads anything else, and names what is wrong with it.
    if (auto facts = events::read_valid_facts(req.body, options_.max_batch_events)) {
      envs = std::move(facts->events);
      texts = std::move(facts->texts);
      batch = facts->array;
    } else if (auto read = read_events(req.body, options_.max_batch_events, batch); read) {
      envs = std::move(*read);
    } else {
      for (const auto& type : read.error().refused_types) metrics_.received(type, "refused");
      send_json(res, read.error().status, read.error().answer);
      return;
    }
    if (*who && !writes_only_allowed(**who, envs, batch, metrics_, res)) return;

    std::chrono::steady_clock::duration waited{};
    events::TypeCounts counts;  // by type and result; the accepted events' types move to the log
    auto ingested = ingest(log_, store_, envs, options_.backlog_wait, &waited,
                           texts.empty() ? nullptr : &texts, &counts);
    metrics_.backlog_wait(std::chrono::duration<double>(waited).count());
    if (!ingested && ingested.error().too_large) {  // nothing appended; resending cannot help
      const size_t i = *ingested.error().too_large;
      send_error(res, 413, "event_too_large",
                 {{"index", i}, {"id", envs[i].id}, {"reason", ingested.error().message}});
      return;
    }
    if (!ingested) {
      // A full backlog appended nothing. After a failed append some partitions may already
      // hold their events; either way a retry is safe (idempotency keys).
      const bool full = ingested.error().backlog_full;
      if (full) res.set_header("Retry-After", "1");
      send_error(res, 503, full ? "backlog_full" : "unavailable",
                 {{"reason", ingested.error().message},
                  {"retry", full ? "resend the same request later" : "resend the same request"}});
      return;
    }
    // The answer is written as text, keys in the order json::dump gives them: a batch answers
    // per event, and building a JSON tree of a thousand results cost more than the ingest.
    size_t accepted = 0, duplicates = 0;
    std::string results;
    results.reserve(envs.size() * 80);
    for (size_t i = 0; i < envs.size(); ++i) {
      const IngestResult& in = (*ingested)[i];
      // A result's fields after its id, into a buffer and then onto the text at once: a call
      // to append each piece was 5% of the handler's instructions. (ObjectText, which checks
      // each key's order and quoting, cost the handler 1,798M instructions against 1,644M, callgrind.)
      ResultText after;
      if (batch) after.field(",\"index\":", static_cast<int64_t>(i));
      if (in.duplicate) {
        if (in.seq) after.field(",\"seq\":", static_cast<int64_t>(in.seq->value()));
        after.put(",\"status\":\"duplicate\"}");
        ++duplicates;
      } else {
        after.field(",\"offset\":", in.offset->value());
        after.field(",\"partition\":", in.partition.value());
        after.put(",\"status\":\"accepted\"}");
        ++accepted;
      }
      results += i ? ",{\"id\":" : "{\"id\":";
      events::append_quoted(results, envs[i].id);
      results.append(after.text, after.size);
    }
    for (const auto& c : counts.counts()) metrics_.received(c.type, c.result, c.n);
    // Written once into the body: a batch's answer is about 80 bytes an event, and joining
    // it through temporaries copied it four times (5% of the front door's time, page faults
    // included).
    std::string& answer = res.body;
    answer.reserve(results.size() + 64);
    answer = "{\"accepted\":";
    events::append_integer(answer, static_cast<int64_t>(accepted));
    answer += ",\"duplicates\":";
    events::append_integer(answer, static_cast<int64_t>(duplicates));
    if (batch) {
      answer += ",\"results\":[";
      answer += results;
      answer += "]}";
    } else {
      answer += ',';
      answer.append(results, 1, std::string::npos);  // the one result's fields, after the counts
    }
    res.status = 202;
    res.set_header("Content-Type", "application/json");
  });

  svr.Get(R"(/v1/queues/([^/]+)/intervals)", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
    auto tenant = tenant_param(req, res);
    if (!tenant) return;
    const std::string queue = req.matches[1];
    auto from = time_param(req, res, "from", INT64_MIN / 2);
    if (!from) return;
    auto to = time_param(req, res, "to", INT64_MAX / 2);
    if (!to) return;
    auto interval_s = int_param(req, res, "interval_s", 900, 300, 86400);
    if (!interval_s) return;
    if (*interval_s % 300 != 0 || 86400 % *interval_s != 0) {
      send_error(res, 400, "invalid_parameter",
                 {{"parameter", "interval_s"},
                  {"reason", "must be a multiple of 300 that divides a day (300, 900, 1800, "
                             "3600, ..., 86400)"}});
      return;
    }
    const std::string channel = req.has_param("channel") ? req.get_param_value("channel") : "";
    auto offset_ms = utc_offset_param(req, res);
    if (!offset_ms) return;
    const int64_t interval_ms = *interval_s * 1000;
    // Whole intervals: `from` rounds down and `to` up to the interval grid (in local time).
    const int64_t lo = projections::local_bucket_of(*from, interval_ms, *offset_ms);
    const int64_t hi = projections::local_bucket_of(*to - 1, interval_ms, *offset_ms) + interval_ms;
    auto rows = store_.intervals(*tenant, queue, lo, hi, channel == "*" ? "" : channel);
    json out = json::array();
    for (const auto& r : projections::roll_up(rows, interval_ms, channel == "*", *offset_ms))
      out.push_back(interval_json(r, interval_ms));
    send_json(res, 200,
              {{"tenant", *tenant},
               {"queue", queue},
               {"interval_s", *interval_s},
               {"channel", channel.empty() ? "each" : channel},
               {"intervals", std::move(out)}});
  });

  svr.Get(R"(/v1/queues/([^/]+)/forecast)", [this](const httplib::Request& req,
                                                   httplib::Response& res) {
    auto tenant = tenant_param(req, res);
    if (!tenant) return;
    projections::QueuePlanRequest r;
    r.tenant = *tenant;
    r.queue = req.matches[1];
    r.channel = req.has_param("channel") ? req.get_param_value("channel") : "";
    auto horizon = int_param(req, res, "horizon_days", 7, 1, 56);
    if (!horizon) return;
    auto interval_s = int_param(req, res, "interval_s", 900, 300, 3600);
    if (!interval_s) return;
    if (*interval_s != 300 && *interval_s != 900 && *interval_s != 1800 && *interval_s != 3600) {
      send_error(res, 400, "invalid_parameter",
                 {{"parameter", "interval_s"}, {"reason", "must be 300, 900, 1800 or 3600"}});
      return;
    }
    auto offset_ms = utc_offset_param(req, res);
    if (!offset_ms) return;
    auto& o = r.options;
    auto target = double_param(req, res, "target_sl", 0.8, 0, 0.999);
    auto threshold = double_param(req, res, "threshold_s", 20, 0, 86400);
    auto occupancy = double_param(req, res, "max_occupancy", 1, 0.01, 1);
    auto shrinkage = double_param(req, res, "shrinkage", 0, 0, 0.95);
    auto patience = double_param(req, res, "patience_s", 0, 0, 86400);
    auto concurrency = int_param(req, res, "concurrency", 1, 1, 100);
    auto aht = double_param(req, res, "aht_s", 300, 1, 86400);
    if (!target || !threshold || !occupancy || !shrinkage || !patience || !concurrency || !aht) return;
    r.interval_ms = *interval_s * 1000;
    r.utc_offset_ms = *offset_ms;
    o.horizon_days = static_cast<int>(*horizon);
    o.target = projections::Target{*target, *occupancy, *shrinkage};
    r.target_given = req.has_param("target_sl");
    o.threshold_s = *threshold;
    r.threshold_given = req.has_param("threshold_s");
    if (*patience > 0) o.patience_s = *patience;
    o.concurrency = static_cast<int>(*concurrency);
    o.default_aht_s = *aht;
    if (req.has_param("method")) {
      o.method = projections::forecast_method_named(req.get_param_value("method"));
      if (!o.method) {
        send_error(res, 400, "invalid_parameter",
                   {{"parameter", "method"},
                    {"reason", "must be seasonal_naive, seasonal_mean or holt_winters"}});
        return;
      }
    }
    auto plan = projections::plan_queue(store_, r);
    if (!plan) {
      send_error(res, 404, "not_found", {{"queue", r.queue}, {"tenant", r.tenant}, {"reason", plan.error()}});
      return;
    }
    json out = projections::plan_json(*plan);
    out["tenant"] = r.tenant;
    out["queue"] = r.queue;
    send_json(res, 200, out);
  });

  auto view_route = [this](const char* pattern, projections::view v, const char* what) {
    server_->Get(pattern, [this, v, what](const httplib::Request& req, httplib::Response& res) {
      auto tenant = tenant_param(req, res);
      if (!tenant) return;
      const std::string id = req.matches[1];
      if (auto doc = store_.document(v, *tenant, id)) {
        if (unrendered(res, *doc, what, id, *tenant)) return;
        // How long the oldest conversation has waited, by this server's clock (the view holds
        // only what the journal determines: when it started waiting).
        if (v == projections::view::queues && doc->contains("oldest_waiting_since"))
          if (auto since = events::parse_rfc3339_ms((*doc)["oldest_waiting_since"].get<std::string>()))
            (*doc)["oldest_wait_s"] =
                std::max<double>(0, static_cast<double>(events::wall_clock_us() / 1000 - *since) / 1000.0);
        // A decision with the outcome the platform reported, once it has.
        if (v == projections::view::decisions)
          (*doc)["outcome"] = store_.document(projections::view::outcomes, *tenant, id).value_or(json(nullptr));
        send_json(res, 200, *doc);
      } else {
        send_error(res, 404, "not_found", {{what, id}, {"tenant", *tenant}});
      }
    });
  };
  view_route(R"(/v1/conversations/([^/]+))", projections::view::conversations, "conversation");
  view_route(R"(/v1/agents/([^/]+))", projections::view::agents, "agent");
  view_route(R"(/v1/queues/([^/]+))", projections::view::queues, "queue");
  // The customer's profile and journey features, with their latest conversations in order.
  svr.Get(R"(/v1/customers/([^/]+)/journey)", [this](const httplib::Request& req, httplib::Response& res) {
    auto tenant = tenant_param(req, res);
    if (!tenant) return;
    auto limit = int_param(req, res, "limit", 20, 1, 1000);
    if (!limit) return;
    const std::string id = req.matches[1];
    auto doc = store_.document(projections::view::customers, *tenant, id);
    if (!doc) {
      send_error(res, 404, "not_found", {{"customer", id}, {"tenant", *tenant}});
      return;
    }
    if (unrendered(res, *doc, "customer", id, *tenant)) return;
    (*doc)["conversations"] = store_.documents_with_prefix(
        projections::view::journeys, *tenant, journey::Journeys::visit_prefix(id), static_cast<size_t>(*limit));
    send_json(res, 200, *doc);
  });
  view_route(R"(/v1/policies/([^/]+))", projections::view::policies, "policy");
  view_route(R"(/v1/decisions/([^/]+))", projections::view::decisions, "decision");

  svr.Get("/v1/journal", [this](const httplib::Request& req, httplib::Response& res) {
    auto tenant = tenant_param(req, res);
    if (!tenant) return;
    auto after = int_param(req, res, "after", -1, -1, INT64_MAX);
    if (!after) return;
    auto limit = int_param(req, res, "limit", 100, 1, 1000);
    if (!limit) return;
    auto wait_ms = int_param(req, res, "wait_ms", 0, 0, 30000);
    if (!wait_ms) return;
    std::optional<seq_no> from;
    if (*after >= 0) from = seq_no{static_cast<uint64_t>(*after)};
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(*wait_ms);
    std::vector<std::string> entries;
    std::shared_ptr<WaitingPlace> waiting;  // taken only once there is nothing yet to return
    for (;;) {
      uint64_t seen = store_.changes();
      entries = store_.journal_after(*tenant, from, static_cast<size_t>(*limit));
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (!entries.empty() || left.count() <= 0 || stopping_) break;
      if (!waiting && !(waiting = take_place(res, false))) return;
      store_.wait_for_change(seen, left);
    }
    int64_t next = *after;
    if (!entries.empty())
      if (auto last = events::read_envelope_text(entries.back()); last && last->seq)
        next = static_cast<int64_t>(last->seq->value());
    std::string out = "{\"entries\":[";
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) out += ',';
      out += entries[i];
    }
    out += "],\"next\":" + std::to_string(next) + "}";
    res.status = 200;
    res.set_content(out, "application/json");
  });

  // The journal as server-sent events (text/event-stream), for EventSource and the like: each
  // entry an event whose id is its seq, so a reconnecting client's Last-Event-ID resumes right
  // after it. A stream holds a thread for as long as it is open, so it takes a place among the
  // waiting long-polls (503 too_many_waiting past their limit), and gives it back when the
  // client goes: a client that closed its end is found while the stream waits (gone_check), a
  // write that fails ends it, and a heartbeat comment is written after heartbeat_ms of
  // silence so that a connection lost without a close is found too (and proxies keep it).
  svr.Get("/v1/journal/stream", [this](const httplib::Request& req, httplib::Response& res) {
    std::string owner;  // another node's, whose stream of the tenant this one relays
    auto tenant = tenant_param(req, res, &owner);
    if (!tenant) return;
    auto stream = std::make_shared<JournalStream>();
    stream->tenant = *tenant;
    if (req.has_header("Last-Event-ID")) {
      auto seq = integer_of(req.get_header_value("Last-Event-ID"));
      if (!seq || *seq < 0) {
        send_error(res, 400, "invalid_header",
                   {{"header", "Last-Event-ID"},
                    {"reason",
                     "must be the seq of a journal entry (a whole number), as the "
                     "stream's event ids are"}});
        return;
      }
      stream->after = seq_no{static_cast<uint64_t>(*seq)};
    } else {
      auto after = int_param(req, res, "after", -1, -1, INT64_MAX);
      if (!after) return;
      if (*after >= 0) stream->after = seq_no{static_cast<uint64_t>(*after)};
    }
    auto heartbeat = int_param(req, res, "heartbeat_ms", 15000, 100, 60000);
    if (!heartbeat) return;
    stream->heartbeat = std::chrono::milliseconds(*heartbeat);
    if (req.has_param("types")) {
      const std::string list = req.get_param_value("types");
      for (size_t from = 0; from <= list.size();) {
        const size_t comma = std::min(list.find(',', from), list.size());
        std::string type = list.substr(from, comma - from);
        if (events::kind_of(type) == events::event_kind::unknown) {
          send_error(res, 400, "invalid_parameter",
                     {{"parameter", "types"},
                      {"type", type},
                      {"reason", "must be event types of the contract, separated by commas"}});
          return;
        }
        stream->types.insert(std::move(type));
        from = comma + 1;
      }
    }
    auto place = take_place(res, true);
    if (!place) return;
    if (!owner.empty()) return relay_stream(req, res, owner, log_.partition_of(*tenant), place);
    stream->authorization = req.get_header_value("Authorization");
    stream->keys = std::atomic_load(&credentials_);
    stream->next_beat = std::chrono::steady_clock::now() + stream->heartbeat;
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: pass each event on as it comes
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream](size_t, httplib::DataSink& sink) { return pump(*stream, sink); },
        [place](bool) {});  // the response's end lets the place go
  });

  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    metrics_.memtable_bytes(store_.memtable_bytes());
    metrics_.write_stall_micros(store_.write_totals().stall_micros);
    metrics_.waiting_polls(waiting_polls_.load(), poll_limit_, streams_.load());
    metrics_.ready(!not_ready_because());
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });
  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  svr.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const auto why = not_ready_because();
    json answer = {{"ready", !why}};
    if (why && !why->empty()) answer["reason"] = *why;
    send_json(res, why ? 503 : 200, answer);
  });
}

std::optional<std::string> HttpApi::not_ready_because() const {
  if (auto refused = store_.write_error())  // e.g. a full disk: writes would be answered 503
    return "the store refuses writes: " + *refused;
  if (!not_ready_) return std::string();
  return not_ready_();  // warming up, recovering, or (Kafka) owning nothing yet
}

namespace {

// Why httplib could not bind host:port (it says only that it could not): the host does not
// resolve, or binding a socket of its own to the address fails with the system's reason.
std::string why_not_bound(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found))
    return std::string("the host does not resolve: ") + gai_strerror(rc);
  std::string why = "unknown";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    listening_options(fd);  // as the server binds
    const bool bound = bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    why = bound ? "the address binds now (taken and released meanwhile?)" : std::strerror(errno);
    close(fd);
    if (!bound) break;
  }
  freeaddrinfo(found);
  return why;
}

}  // namespace

Status HttpApi::start() {
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ <= 0)
      return Status::error("cannot bind HTTP on " + options_.host + ": " +
                           why_not_bound(options_.host, 0));
  } else {
    if (!server_->bind_to_port(options_.host, options_.port))
      return Status::error("cannot bind HTTP on " + options_.host + ":" +
                           std::to_string(options_.port) + ": " +
                           why_not_bound(options_.host, options_.port));
    port_ = options_.port;
  }
  const std::string& host = options_.host;
  if (owns_ && !options_.advertise.empty())
    self_ = options_.advertise;
  else if (owns_ && !host.empty() && host != "0.0.0.0" && host != "::" && host != "[::]")
    self_ = host + ":" + std::to_string(port_);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return Status::ok();
}

void HttpApi::stop() {
  if (thread_.joinable()) {
    stopping_ = true;
    store_.wake_waiters();  // long-polls answer with what they have instead of holding shutdown
    server_->stop();
    thread_.join();
  }
}

}  // namespace omniroute::adapters
