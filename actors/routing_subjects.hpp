// Internal to the routing domain: how requirement expressions see a conversation and an
// agent, and small JSON helpers shared by routing.cpp and routing_state.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "events/envelope.hpp"
#include "events/expression.hpp"

namespace omniroute::routing {

// A view document rendered as text, parsed (the *_view accessors); nullopt stays nullopt.
inline std::optional<events::json> parsed(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  return events::json::parse(*text);
}

inline const std::string& str(const events::json& data, std::string_view key) {
  return events::string_member(data, key);
}

// Compiles a requirement the front door has already validated; an invalid text (only from a
// journal written by a different version) compiles to "always true".
inline expr::Expression compile_requirement(const std::string& text) {
  auto e = expr::Expression::compile(text, expr::requirement_roots());
  return e ? std::move(e.value()) : expr::Expression{};
}

// The skill most_proficient ranks by when the queue names none: the first agent.skills.<name>
// the requirement uses; empty when there is none.
inline std::string proficiency_skill(const expr::Expression& requirement) {
  for (const auto& p : requirement.paths())
    if (p.root == 1 && p.segments.size() == 2 && p.segments[0] == "skills") return p.segments[1];
  return {};
}

// conversation.<name>: channel, language, intent, customer, queue, id (strings), priority and
// confidence (numbers), attributes.<path>; any other name is looked up in its attributes, so
// `conversation.tags` is `conversation.attributes.tags`.
template <typename Conversation>
class ConversationSubject final : public expr::Subject {
 public:
  explicit ConversationSubject(const Conversation& c) : c_(c) {}
  expr::Value get(const std::vector<std::string>& path) const override {
    const std::string& name = path[0];
    if (path.size() == 1) {
      if (name == "channel") return expr::Value::text(c_.channel);
      if (name == "language") return c_.language.empty() ? expr::Value{} : expr::Value::text(c_.language);
      if (name == "intent") return c_.intent.empty() ? expr::Value{} : expr::Value::text(c_.intent);
      if (name == "customer") return expr::Value::text(c_.customer);
      if (name == "queue") return expr::Value::text(c_.queue);
      if (name == "id") return expr::Value::text(c_.id);
      if (name == "priority") return expr::Value::num(static_cast<double>(c_.priority));
      if (name == "confidence") return c_.confidence < 0 ? expr::Value{} : expr::Value::num(c_.confidence);
    }
    if (name == "attributes") return expr::walk(c_.attributes, path, 1);
    return expr::walk(c_.attributes, path, 0);
  }

 private:
  const Conversation& c_;
};

// agent.<name>: id, status (strings), skills.<skill> (proficiency 1..5), skills (the object),
// attributes.<path>; any other name is looked up in its attributes (`agent.languages`).
template <typename Agent>
class AgentSubject final : public expr::Subject {
 public:
  explicit AgentSubject(const Agent& a) : a_(a) {}
  expr::Value get(const std::vector<std::string>& path) const override {
    const std::string& name = path[0];
    if (path.size() == 1 && name == "id") return expr::Value::text(a_.id);
    if (path.size() == 1 && name == "status") return expr::Value::text(a_.status);
    if (name == "skills") return expr::walk(a_.skills, path, 1);
    if (name == "attributes") return expr::walk(a_.attributes, path, 1);
    return expr::walk(a_.attributes, path, 0);
  }

 private:
  const Agent& a_;
};

// intent.<name>: name, source (strings), confidence (a number; missing when not given).
class IntentSubject final : public expr::Subject {
 public:
  IntentSubject(const std::string& name, double confidence, const std::string& source)
      : name_(name), confidence_(confidence), source_(source) {}
  expr::Value get(const std::vector<std::string>& path) const override {
    if (path.size() != 1) return {};
    if (path[0] == "name") return expr::Value::text(name_);
    if (path[0] == "confidence") return confidence_ < 0 ? expr::Value{} : expr::Value::num(confidence_);
    if (path[0] == "source") return source_.empty() ? expr::Value{} : expr::Value::text(source_);
    return {};
  }

 private:
  const std::string& name_;
  double confidence_;
  const std::string& source_;
};

}  // namespace omniroute::routing
