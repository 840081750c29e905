// Decision egress by webhook: a tenant's journal, POSTed to a URL in order, at least once.
//
// Each webhook follows one tenant's journal (the same entries GET /v1/journal serves) from its
// cursor: it POSTs the next entries as {"webhook","tenant","entries":[...],"next":SEQ}, signed
// with HMAC-SHA256 of the body under the webhook's secret, and moves its cursor past them only
// when the receiver answers 2xx. The cursor is stored in the data directory, so a restart goes
// on where delivery stopped; a crash between a delivery and the cursor's write delivers those
// entries again (receivers drop what they have by seq). A receiver that fails is retried, with
// backoff up to 30 s, for as long as it fails: nothing is skipped.
//
// File format (`--webhooks FILE`, docs/http-api.md):
//   {"webhooks": [{"name": "acme-crm", "tenant": "acme", "url": "https://crm.example/hook",
//                  "secret": "...", "types": ["conversation.assigned"], "batch": 100}]}
// `types` (only entries of these types are sent; the cursor moves past the others) and `batch`
// (most entries per POST, 1 to 1,000; 100 unless given) are optional.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "events/types.hpp"
#include "ops/metrics.hpp"
#include "projections/store.hpp"

namespace omniroute::adapters {

struct Webhook {
  std::string name;
  std::string tenant;
  std::string url;              // http:// or https://, host, optional port and path
  std::string secret;           // the HMAC-SHA256 key of the signature
  std::set<std::string> types;  // empty: every entry
  size_t batch = 100;
};

// Reads and checks a webhooks file; the error names the file and what is wrong in it.
result<std::vector<Webhook>> load_webhooks(const std::string& path);
result<std::vector<Webhook>> parse_webhooks(std::string_view text, const std::string& source);

// The signature header's value of a body: "sha256=" and the HMAC-SHA256's 64 hex digits.
std::string webhook_signature(const std::string& secret, std::string_view body);

// Delivers the webhooks, a thread each, until stopped.
class WebhookEgress {
 public:
  // How long a failed delivery waits before the next try: `first`, doubled after each failure
  // up to `most`.
  struct Backoff {
    std::chrono::milliseconds first{500};
    std::chrono::milliseconds most{30000};
  };
  WebhookEgress(projections::Store& store, ops::Metrics& metrics, std::vector<Webhook> webhooks,
                Backoff backoff);
  WebhookEgress(projections::Store& store, ops::Metrics& metrics, std::vector<Webhook> webhooks)
      : WebhookEgress(store, metrics, std::move(webhooks), Backoff{}) {}
  ~WebhookEgress();
  void start();
  // Ends every delivery thread; a POST in flight is cut short (and sent again after a restart).
  void stop();

 private:
  struct Runner;
  void run(Runner& r);
  // Delivers until stopped (returns then).
  void deliver(Runner& r);
  // Waits up to `d` or until stopped; false when stopped.
  bool pause(std::chrono::milliseconds d);

  projections::Store& store_;
  ops::Metrics& metrics_;
  Backoff backoff_;
  std::vector<std::unique_ptr<Runner>> runners_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable stopped_;
};

}  // namespace omniroute::adapters
