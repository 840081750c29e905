#include "adapters/webhooks.hpp"

#include <httplib.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "adapters/config_file.hpp"
#include "adapters/digests.hpp"
#include "events/envelope.hpp"
#include "events/log_line.hpp"

namespace omniroute::adapters {

namespace {

using nlohmann::json;

// "scheme://host[:port]" and the path ("/" when the URL has none), or nullopt for a URL that is
// not http:// or https:// with a host.
std::optional<std::pair<std::string, std::string>> split_url(const std::string& url) {
  for (const char* scheme : {"http://", "https://"}) {
    const std::string s = scheme;
    if (url.rfind(s, 0) != 0) continue;
    const size_t slash = url.find('/', s.size());
    std::string origin = url.substr(0, slash),
                path = slash == std::string::npos ? "/" : url.substr(slash);
    const std::string host = origin.substr(s.size());
    if (host.empty() || host.front() == ':' || host.find_first_of(" \t@?#") != std::string::npos)
      return std::nullopt;
    return std::make_pair(std::move(origin), std::move(path));
  }
  return std::nullopt;
}

result<Webhook> webhook_of(const json& e, size_t i) {
  const std::string at = "webhooks[" + std::to_string(i) + "]";
  auto wrong = [&](const std::string& what) { return Status::error(at + what); };
  if (!e.is_object()) return wrong(": must be an object with name, tenant, url and secret");
  if (const std::string other =
          unknown_member(e, {"name", "tenant", "url", "secret", "types", "batch"});
      !other.empty())
    return wrong("." + other + ": unknown member (name, tenant, url, secret, types and batch are)");
  auto text = [&](const char* member) -> const std::string* {
    const json* v = e.contains(member) ? &e[member] : nullptr;
    return v && v->is_string() && !v->get_ref<const std::string&>().empty()
               ? &v->get_ref<const std::string&>()
               : nullptr;
  };
  Webhook w;
  if (!text("name")) return wrong(".name: must be a non-empty string");
  w.name = *text("name");
  if (!text("tenant") || !events::valid_tenant(*text("tenant")))
    return wrong(std::string(".tenant: must be a tenant name (") + events::tenant_rule + ")");
  w.tenant = *text("tenant");
  if (!text("url") || !split_url(*text("url")))
    return wrong(
        ".url: must be an http:// or https:// URL with a host, e.g. https://crm.example/hook");
  w.url = *text("url");
  if (!text("secret") || text("secret")->size() < 16)
    return wrong(".secret: must be a string of at least 16 characters (the key of the signature)");
  w.secret = *text("secret");
  if (e.contains("types")) {
    if (!e["types"].is_array() || e["types"].empty())
      return wrong(".types: must be a non-empty array of event types (or left out for all)");
    for (const json& t : e["types"]) {
      if (!t.is_string() || events::kind_of(t.get<std::string>()) == events::event_kind::unknown)
        return wrong(".types: " + t.dump() + " is not an event type of the contract");
      w.types.insert(t.get<std::string>());
    }
  }
  if (e.contains("batch")) {
    if (!e["batch"].is_number_integer() || e["batch"].get<int64_t>() < 1 ||
        e["batch"].get<int64_t>() > 1000)
      return wrong(".batch: must be a whole number from 1 to 1000");
    w.batch = e["batch"].get<size_t>();
  }
  return w;
}

}  // namespace

result<std::vector<Webhook>> load_webhooks(const std::string& path) {
  auto text = read_config(path, "webhooks");
  if (!text) return text.error();
  return parse_webhooks(*text, path);
}

result<std::vector<Webhook>> parse_webhooks(std::string_view text, const std::string& source) {
  auto wrong = [&](const std::string& what) {
    return Status::error("webhooks " + source + ": " + what);
  };
  auto list = config_array(text, "webhooks", source, "webhooks");
  if (!list) return list.error();
  std::vector<Webhook> out;
  std::set<std::string> names;
  for (size_t i = 0; i < list->size(); ++i) {
    auto w = webhook_of((*list)[i], i);
    if (!w) return wrong(w.error().message());
    if (!names.insert(w->name).second)
      return wrong("webhooks[" + std::to_string(i) + "].name: '" + w->name +
                   "' is named twice (a name keeps its delivery position)");
    out.push_back(std::move(*w));
  }
  return out;
}

std::string webhook_signature(const std::string& secret, std::string_view body) {
  return "sha256=" + hmac_sha256_hex(secret, body);
}

struct WebhookEgress::Runner {
  Webhook hook;
  std::string origin, path;
  std::mutex client_mu;
  httplib::Client* client = nullptr;  // while a delivery is in flight, for stop()
  std::thread thread;
  bool finished = false;  // run() has returned (WebhookEgress::mu_)
};

WebhookEgress::WebhookEgress(projections::Store& store, ops::Metrics& metrics,
                             std::vector<Webhook> webhooks, Backoff backoff)
    : store_(store), metrics_(metrics), backoff_(backoff) {
  for (auto& w : webhooks) {
    auto r = std::make_unique<Runner>();
    auto parts = split_url(w.url);  // checked by parse_webhooks
    if (!parts) throw std::invalid_argument("webhook " + w.name + ": bad url " + w.url);
    r->origin = parts->first;
    r->path = parts->second;
    r->hook = std::move(w);
    runners_.push_back(std::move(r));
  }
}

WebhookEgress::~WebhookEgress() { stop(); }

void WebhookEgress::start() {
  for (auto& r : runners_) r->thread = std::thread([this, raw = r.get()] { run(*raw); });
}

void WebhookEgress::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stopped_.notify_all();
  store_.wake_waiters();
  for (auto& r : runners_) {
    // A POST is cut by stopping its client, but one registered and not yet connected when the
    // client is stopped connects afterwards: the client is stopped again until the runner has
    // returned, so shutdown never waits out a receiver's timeouts.
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(r->client_mu);
        if (r->client) r->client->stop();
      }
      std::unique_lock<std::mutex> lock(mu_);
      if (stopped_.wait_for(lock, std::chrono::milliseconds(50), [&] { return r->finished; }))
        break;
    }
    if (r->thread.joinable()) r->thread.join();
  }
}

bool WebhookEgress::pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !stopped_.wait_for(lock, d, [&] { return stopping_.load(); });
}

void WebhookEgress::run(Runner& r) {
  struct Finished {  // tells stop() the runner has returned, however it returns
    WebhookEgress& egress;
    Runner& runner;
    ~Finished() {
      std::lock_guard<std::mutex> lock(egress.mu_);
      runner.finished = true;
      egress.stopped_.notify_all();
    }
  } finished{*this, r};
  // What delivery throws (an entry it cannot read, no memory) stops neither the server nor the
  // webhook: logged, and delivery starts again from the stored position after a pause.
  metrics_.webhook_started(r.hook.name);
  while (!stopping_) {
    try {
      deliver(r);
      return;
    } catch (const std::exception& e) {
      log_line() << "omniroute: webhook " << r.hook.name << ": " << e.what()
                 << "; starting again in " << backoff_.most.count() / 1000 << " s\n";
      metrics_.webhook_delivery(r.hook.name, false, 0);
    }
    if (!pause(backoff_.most)) return;
  }
}

void WebhookEgress::deliver(Runner& r) {
  const Webhook& w = r.hook;
  std::optional<seq_no> cursor = store_.egress_cursor(w.name, w.tenant);
  if (cursor) metrics_.webhook_position(w.name, cursor->value());
  httplib::Client client(r.origin);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  client.set_write_timeout(10, 0);
  client.set_tcp_nodelay(true);
  std::chrono::milliseconds wait = backoff_.first;
  int failures = 0;
  // Moves the cursor past `last` and stores it; false (after logging) when it cannot be
  // stored: the entries are delivered again later rather than skipped.
  auto advance = [&](seq_no last) {
    if (Status s = store_.set_egress_cursor(w.name, w.tenant, last); !s) {
      log_line() << "omniroute: webhook " << w.name << ": " << s.message() << "\n";
      return false;
    }
    cursor = last;
    metrics_.webhook_position(w.name, last.value());
    return true;
  };
  while (!stopping_) {
    const uint64_t seen = store_.changes();
    const std::vector<std::string> texts = store_.journal_after(w.tenant, cursor, w.batch);
    if (texts.empty()) {
      store_.wait_for_change(seen, std::chrono::seconds(1));
      continue;
    }
    std::string entries;
    seq_no last{0};
    size_t sent = 0;
    for (const auto& text : texts) {
      auto e = events::read_envelope_text(text);  // the journal's own texts: its seq and type
      if (!e || !e->seq)
        throw std::runtime_error("a journal entry after seq " + std::to_string(last.value()) +
                                 " cannot be read");
      last = *e->seq;
      if (!w.types.empty() && !w.types.count(e->type)) continue;
      if (sent++) entries += ',';
      entries += text;
    }
    if (sent == 0) {  // nothing of the types it wants: past them without a POST
      if (!advance(last) && !pause(wait)) return;
      continue;
    }
    const std::string body = "{\"webhook\":" + json(w.name).dump() +
                             ",\"tenant\":" + json(w.tenant).dump() + ",\"entries\":[" + entries +
                             "],\"next\":" + std::to_string(last.value()) + "}";
    const httplib::Headers headers{{"X-Omniroute-Webhook", w.name},
                                   {"X-Omniroute-Signature", webhook_signature(w.secret, body)}};
    {
      std::lock_guard<std::mutex> lock(r.client_mu);
      if (stopping_) return;
      r.client = &client;
    }
    auto res = client.Post(r.path, headers, body, "application/json");
    {
      std::lock_guard<std::mutex> lock(r.client_mu);
      r.client = nullptr;
    }
    const bool delivered = res && res->status >= 200 && res->status < 300;
    metrics_.webhook_delivery(w.name, delivered, delivered ? sent : 0);
    if (delivered) {
      if (failures > 0)
        log_line() << "omniroute: webhook " << w.name << ": delivering again after " << failures
                   << " failed attempts\n";
      failures = 0;
      wait = backoff_.first;
      metrics_.webhook_failing(w.name, 0);
      if (advance(last)) continue;
    } else {
      if (stopping_) return;
      if (failures++ == 0)
        log_line() << "omniroute: webhook " << w.name << ": delivery to " << w.url << " failed ("
                   << (res ? "HTTP " + std::to_string(res->status)
                           : httplib::to_string(res.error()))
                   << "); retrying, nothing is skipped\n";
      metrics_.webhook_failing(w.name, failures);
    }
    if (!pause(wait)) return;
    wait = std::min(wait * 2, backoff_.most);
  }
}

}  // namespace omniroute::adapters
