// parse_config: YAML -> ServeConfig, with every mistake reported as "FILE:LINE: path: what".
// Each section is read by one function that knows its keys; the readers below check the
// YAML node kind and range of each scalar so that no error surfaces after start-up.
#include "pipeline/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "engine/sampler.h"
#include "pipeline/json_schema.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/utf8.h"

namespace tandem::pipeline {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& path,
                         const std::string& msg) const {
    fail_line(at.IsDefined() ? at.Mark().line + 1 : 0, path, msg);
  }
  [[noreturn]] void fail_line(int line, const std::string& path, const std::string& msg) const {
    std::string where = file_;
    if (line > 0) where += ":" + std::to_string(line);
    throw ConfigError(where + ": " + (path.empty() ? "" : path + ": ") + msg);
  }

  // A map whose keys are all in `known` (each at most once).
  void expect_map(const YAML::Node& n, const std::string& path,
                  const std::vector<std::string>& known) const {
    if (!n.IsMap()) fail(n, path, "expected a map of settings");
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) fail(it->first, path, "keys must be names");
      const std::string key = it->first.Scalar();
      const std::string kpath = path.empty() ? key : path + "." + key;
      if (!seen.insert(key).second) fail(it->first, kpath, "duplicate key");
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string best;
        size_t best_d = 3;
        for (const auto& k : known) {
          const size_t d = edit_distance(key, k);
          if (d < best_d) best_d = d, best = k;
        }
        fail(it->first, kpath,
             "unknown key '" + key + "'" + (best.empty() ? "" : " (did you mean '" + best + "'?)"));
      }
    }
  }

  std::string str(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) fail(n, path, "expected a string");
    return n.Scalar();
  }
  double num(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) fail(n, path, "expected a number");
    try {
      return n.as<double>();
    } catch (const YAML::Exception&) {
      fail(n, path, "expected a number (got '" + n.Scalar() + "')");
    }
  }
  int64_t integer(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) fail(n, path, "expected an integer");
    try {
      return n.as<int64_t>();
    } catch (const YAML::Exception&) {
      fail(n, path, "expected an integer (got '" + n.Scalar() + "')");
    }
  }
  bool boolean(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) fail(n, path, "expected true or false");
    try {
      return n.as<bool>();
    } catch (const YAML::Exception&) {
      fail(n, path, "expected true or false (got '" + n.Scalar() + "')");
    }
  }
  std::string one_of(const YAML::Node& n, const std::string& path,
                     const std::vector<std::string>& choices) const {
    const std::string s = str(n, path);
    if (std::find(choices.begin(), choices.end(), s) != choices.end()) return s;
    std::string all;
    for (const auto& c : choices) all += (all.empty() ? "" : ", ") + c;
    fail(n, path, "must be one of " + all + " (got '" + s + "')");
  }
  // Range checks that quote the value, as in "must be > 0 (got -2)".
  template <typename T>
  void check(bool ok, const YAML::Node& n, const std::string& path, const std::string& rule,
             T got) const {
    if (ok) return;
    std::ostringstream os;
    os << got;
    fail(n, path, "must be " + rule + " (got " + os.str() + ")");
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

std::string key_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}
std::string index_path(const std::string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// YAML -> JSON for schemas: plain scalars take their YAML 1.2 core type, quoted ones stay strings.
template <typename Json>
Json to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    Json o = Json::object();
    for (auto it = n.begin(); it != n.end(); ++it)
      o[it->first.Scalar()] = to_json<Json>(it->second);
    return o;
  }
  if (n.IsSequence()) {
    Json a = Json::array();
    for (const auto& e : n) a.push_back(to_json<Json>(e));
    return a;
  }
  if (!n.IsScalar()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() != "!") {
    if (s == "null" || s == "~" || s == "Null" || s == "NULL") return nullptr;
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    try {
      size_t pos = 0;
      const long long v = std::stoll(s, &pos);
      if (pos == s.size()) return v;
    } catch (const std::exception&) {
    }
    try {
      size_t pos = 0;
      const double v = std::stod(s, &pos);
      if (pos == s.size()) return v;
    } catch (const std::exception&) {
    }
  }
  return s;
}

// The YAML node a schema path (keys and "[i]") leads to, or the deepest one found.
YAML::Node schema_node(const YAML::Node& top, const std::vector<std::string>& where) {
  YAML::Node n;
  n.reset(top);
  for (const auto& w : where) {
    YAML::Node next;
    bool found = false;
    if (!w.empty() && w[0] == '[' && n.IsSequence()) {
      const size_t i = std::stoul(w.substr(1));
      if (i < n.size()) {
        next.reset(n[i]);
        found = true;
      }
    } else if (n.IsMap()) {
      // The key node itself for the last step, so the line is the keyword's.
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (it->first.Scalar() == w) {
          if (&w == &where.back()) return it->first;
          next.reset(it->second);
          found = true;
        }
      }
    }
    if (!found) return n;
    n.reset(next);
  }
  return n;
}

void read_server(const Reader& r, const YAML::Node& n, ServerConfig& s) {
  r.expect_map(n, "server", {"host", "port", "api_key"});
  if (n["host"]) s.host = r.str(n["host"], "server.host");
  if (n["port"]) {
    const int64_t p = r.integer(n["port"], "server.port");
    r.check(p >= 0 && p <= 65535, n["port"], "server.port", "in 0..65535", p);
    s.port = static_cast<int>(p);
  }
  if (n["api_key"]) s.api_key = r.str(n["api_key"], "server.api_key");
}

void read_resources(const Reader& r, const YAML::Node& n, ResourceConfig& c) {
  r.expect_map(n, "resources",
               {"mode", "control_period_ms", "window_s", "threads", "kv_blocks", "max_batch_tokens",
                "max_running"});
  if (n["mode"])
    c.mode = r.one_of(n["mode"], "resources.mode", {"adaptive", "static"}) == "static"
                 ? ShareMode::kStatic
                 : ShareMode::kAdaptive;
  auto positive = [&](const char* key, double& out) {
    if (!n[key]) return;
    const std::string p = key_path("resources", key);
    out = r.num(n[key], p);
    r.check(out > 0, n[key], p, "> 0", out);
  };
  positive("control_period_ms", c.control_period_ms);
  positive("window_s", c.window_s);
  if (n["threads"]) {
    const int64_t t = r.integer(n["threads"], "resources.threads");
    r.check(t >= 0 && t <= 4096, n["threads"], "resources.threads", "in 0..4096", t);
    c.threads = static_cast<int>(t);
  }
  if (n["kv_blocks"]) {
    c.kv_blocks = r.integer(n["kv_blocks"], "resources.kv_blocks");
    r.check(c.kv_blocks >= 0, n["kv_blocks"], "resources.kv_blocks", ">= 0", c.kv_blocks);
  }
  if (n["max_batch_tokens"]) {
    c.max_batch_tokens = r.integer(n["max_batch_tokens"], "resources.max_batch_tokens");
    r.check(c.max_batch_tokens >= 1, n["max_batch_tokens"], "resources.max_batch_tokens", ">= 1",
            c.max_batch_tokens);
  }
  if (n["max_running"]) {
    c.max_running = r.integer(n["max_running"], "resources.max_running");
    r.check(c.max_running >= 1, n["max_running"], "resources.max_running", ">= 1", c.max_running);
  }
}

ModelConfig read_model(const Reader& r, const YAML::Node& n, const std::string& path,
                       const std::filesystem::path& base) {
  ModelConfig m;
  m.line = n.Mark().line + 1;
  r.expect_map(n, path, {"name", "path", "quantize", "bf16_activations", "placement", "max_context"});
  if (!n["name"]) r.fail(n, path, "a model needs a 'name'");
  m.name = r.str(n["name"], key_path(path, "name"));
  if (m.name.empty()) r.fail(n["name"], key_path(path, "name"), "must not be empty");
  if (!n["path"]) r.fail(n, path, "a model needs a 'path'");
  m.path = r.str(n["path"], key_path(path, "path"));
  if (m.path.is_relative() && !base.empty()) m.path = base / m.path;
  if (n["quantize"]) {
    m.quantize = r.one_of(n["quantize"], key_path(path, "quantize"),
                          {"", "q8_0", "q4_0", "q5_0", "q4_k", "q6_k", "f16", "bf16", "f32"});
  }
  if (n["bf16_activations"]) m.bf16_activations = r.boolean(n["bf16_activations"], key_path(path, "bf16_activations"));
  if (const YAML::Node p = n["placement"]) {
    const std::string pp = key_path(path, "placement");
    if (p.IsMap()) {
      r.expect_map(p, pp, {"gpu_layers"});
      if (!p["gpu_layers"]) r.fail(p, pp, "expected {gpu_layers: N}");
      const int64_t l = r.integer(p["gpu_layers"], pp + ".gpu_layers");
      r.check(l >= 0, p["gpu_layers"], pp + ".gpu_layers", ">= 0", l);
      m.placement = Placement::kLayers;
      m.gpu_layers = static_cast<int>(l);
    } else {
      const std::string s = r.one_of(p, pp, {"cpu", "gpu", "auto"});
      m.placement = s == "cpu" ? Placement::kCpu : s == "gpu" ? Placement::kGpu : Placement::kAuto;
    }
  }
  if (n["max_context"]) {
    m.max_context = r.integer(n["max_context"], key_path(path, "max_context"));
    r.check(m.max_context >= 1, n["max_context"], key_path(path, "max_context"), ">= 1",
            m.max_context);
  }
  return m;
}

void parse_template(const Reader& r, const YAML::Node& n, const std::string& path) {
  try {
    (void)tokenizer::ChatTemplate::parse(n.Scalar());
  } catch (const Error& e) {
    r.fail(n, path, std::string("template does not parse: ") + e.what());
  }
}

StepConfig read_step(const Reader& r, const YAML::Node& n, const std::string& path) {
  StepConfig s;
  s.line = n.Mark().line + 1;
  if (!n.IsMap()) r.fail(n, path, "a step must be a map of settings");
  if (!n["type"])
    r.fail(n, path, "a step needs a 'type' (generate, map_reduce, classify or extract)");
  const std::string type = r.one_of(n["type"], key_path(path, "type"),
                                    {"generate", "map_reduce", "classify", "extract"});
  std::vector<std::string> keys{"name", "type", "chat"};
  const std::vector<std::string> sampling{"max_tokens", "temperature",        "top_p", "top_k",
                                          "min_p",      "repetition_penalty", "seed",  "stop"};
  if (type == "generate") {
    s.kind = StepKind::kGenerate;
    keys.push_back("prompt");
    keys.insert(keys.end(), sampling.begin(), sampling.end());
  } else if (type == "map_reduce") {
    s.kind = StepKind::kMapReduce;
    for (const char* k : {"input", "map_prompt", "reduce_prompt", "chunk_tokens", "overlap_tokens"})
      keys.push_back(k);
    keys.insert(keys.end(), sampling.begin(), sampling.end());
  } else if (type == "classify") {
    s.kind = StepKind::kClassify;
    keys.push_back("prompt");
    keys.push_back("labels");
  } else {
    s.kind = StepKind::kExtract;
    keys.push_back("prompt");
    keys.push_back("schema");
    keys.insert(keys.end(), sampling.begin(), sampling.end());
  }
  r.expect_map(n, path, keys);
  s.name = n["name"] ? r.str(n["name"], key_path(path, "name")) : type;
  if (s.name.empty()) r.fail(n["name"], key_path(path, "name"), "must not be empty");
  if (n["chat"]) s.chat = r.boolean(n["chat"], key_path(path, "chat"));

  auto text = [&](const char* key, std::string& out, bool required) {
    const std::string p = key_path(path, key);
    if (!n[key]) {
      if (required) r.fail(n, path, "a " + type + " step needs '" + key + "'");
      return;
    }
    out = r.str(n[key], p);
    if (required && out.empty()) r.fail(n[key], p, "must not be empty");
    parse_template(r, n[key], p);
  };
  text("prompt", s.prompt, s.kind == StepKind::kClassify || s.kind == StepKind::kExtract);
  if (s.kind == StepKind::kMapReduce) {
    text("map_prompt", s.map_prompt, true);
    text("reduce_prompt", s.reduce_prompt, true);
    if (n["input"]) s.input = r.str(n["input"], key_path(path, "input"));
    if (n["chunk_tokens"]) {
      s.chunk_tokens = r.integer(n["chunk_tokens"], key_path(path, "chunk_tokens"));
      r.check(s.chunk_tokens >= 16, n["chunk_tokens"], key_path(path, "chunk_tokens"), ">= 16",
              s.chunk_tokens);
    }
    if (n["overlap_tokens"]) {
      s.overlap_tokens = r.integer(n["overlap_tokens"], key_path(path, "overlap_tokens"));
      r.check(s.overlap_tokens >= 0, n["overlap_tokens"], key_path(path, "overlap_tokens"), ">= 0",
              s.overlap_tokens);
    }
    if (s.chunk_tokens > 0 && s.overlap_tokens * 2 > s.chunk_tokens) {
      r.fail(n["overlap_tokens"] ? n["overlap_tokens"] : n, key_path(path, "overlap_tokens"),
             "must be at most half of chunk_tokens (" + std::to_string(s.chunk_tokens) + ")");
    }
  }
  if (s.kind == StepKind::kExtract) s.max_tokens = 256;
  if (s.kind == StepKind::kMapReduce) s.max_tokens = 128;
  if (n["max_tokens"]) {
    s.max_tokens = r.integer(n["max_tokens"], key_path(path, "max_tokens"));
    r.check(s.max_tokens >= 1, n["max_tokens"], key_path(path, "max_tokens"), ">= 1", s.max_tokens);
  }
  auto fnum = [&](const char* key, float& out, double lo, bool lo_open, double hi,
                  const char* rule) {
    if (!n[key]) return;
    const double v = r.num(n[key], key_path(path, key));
    r.check((lo_open ? v > lo : v >= lo) && v <= hi, n[key], key_path(path, key), rule, v);
    out = static_cast<float>(v);
  };
  const double inf = std::numeric_limits<double>::infinity();
  fnum("temperature", s.sampling.temperature, 0, false, 100, "in 0..100");
  fnum("top_p", s.sampling.top_p, 0, true, 1, "in (0, 1]");
  fnum("min_p", s.sampling.min_p, 0, false, 1, "in 0..1");
  fnum("repetition_penalty", s.sampling.repetition_penalty, 0, true, inf, "> 0");
  if (n["top_k"]) {
    const int64_t k = r.integer(n["top_k"], key_path(path, "top_k"));
    r.check(k >= 0 && k <= 1 << 20, n["top_k"], key_path(path, "top_k"), ">= 0", k);
    s.sampling.top_k = static_cast<int32_t>(k);
  }
  if (n["seed"]) {
    const int64_t v = r.integer(n["seed"], key_path(path, "seed"));
    r.check(v >= 0, n["seed"], key_path(path, "seed"), ">= 0", v);
    s.sampling.seed = static_cast<uint64_t>(v);
  }
  try {
    engine::validate(s.sampling);
  } catch (const Error& e) {
    r.fail(n, path, e.what());
  }
  if (const YAML::Node st = n["stop"]) {
    const std::string p = key_path(path, "stop");
    if (st.IsScalar()) {
      s.stop.push_back(st.Scalar());
    } else if (st.IsSequence()) {
      for (size_t i = 0; i < st.size(); ++i) s.stop.push_back(r.str(st[i], index_path(p, i)));
    } else {
      r.fail(st, p, "expected a string or a list of strings");
    }
    for (size_t i = 0; i < s.stop.size(); ++i) {
      if (s.stop[i].empty()) r.fail(st, p, "stop strings must not be empty");
    }
  }
  if (s.kind == StepKind::kClassify) {
    const std::string p = key_path(path, "labels");
    const YAML::Node l = n["labels"];
    if (!l) r.fail(n, path, "a classify step needs 'labels'");
    if (!l.IsSequence()) r.fail(l, p, "expected a list of labels");
    if (l.size() < 2)
      r.fail(l, p, "needs at least 2 labels (got " + std::to_string(l.size()) + ")");
    for (size_t i = 0; i < l.size(); ++i) {
      std::string label = r.str(l[i], index_path(p, i));
      if (label.empty()) r.fail(l[i], index_path(p, i), "must not be empty");
      if (std::find(s.labels.begin(), s.labels.end(), label) != s.labels.end()) {
        r.fail(l[i], index_path(p, i), "duplicate label '" + label + "'");
      }
      s.labels.push_back(std::move(label));
    }
  }
  if (s.kind == StepKind::kExtract) {
    const std::string p = key_path(path, "schema");
    const YAML::Node sc = n["schema"];
    if (!sc) r.fail(n, path, "an extract step needs a 'schema'");
    s.schema = to_json<nlohmann::json>(sc);
    s.ordered_schema = to_json<nlohmann::ordered_json>(sc);
    if (!s.schema.is_object() || s.schema.value("type", nlohmann::json()) != "object") {
      r.fail(sc, p, "the top level must be {type: object, properties: ...}");
    }
    try {
      const SchemaNode node = compile_schema(s.ordered_schema);
      // The decoder closes the value in time when it may spend a token per byte.
      if (s.max_tokens < node.min_bytes) {
        r.fail(n["max_tokens"] ? n["max_tokens"] : n, key_path(path, "max_tokens"),
               "must be at least " + std::to_string(node.min_bytes) +
                   " for this schema (the bytes of its shortest JSON; got " +
                   std::to_string(s.max_tokens) + ")");
      }
    } catch (const SchemaError& e) {
      std::string sub;
      for (const auto& w : e.where()) sub += (!w.empty() && w[0] == '[') ? w : "." + w;
      r.fail(schema_node(sc, e.where()), p + sub, e.detail());
    }
  }
  return s;
}

PipelineConfig read_pipeline(const Reader& r, const YAML::Node& n, const std::string& path) {
  PipelineConfig c;
  c.line = n.Mark().line + 1;
  r.expect_map(
      n, path,
      {"name", "model", "class", "weight", "min_share", "max_share", "slo", "limits", "steps"});
  if (!n["name"]) r.fail(n, path, "a pipeline needs a 'name'");
  c.name = r.str(n["name"], key_path(path, "name"));
  if (c.name.empty()) r.fail(n["name"], key_path(path, "name"), "must not be empty");
  if (!n["model"]) r.fail(n, path, "a pipeline needs a 'model'");
  c.model = r.str(n["model"], key_path(path, "model"));
  if (n["class"]) {
    c.cls = r.one_of(n["class"], key_path(path, "class"), {"interactive", "batch"}) == "batch"
                ? PipelineClass::kBatch
                : PipelineClass::kInteractive;
  }
  if (n["weight"]) {
    c.weight = r.num(n["weight"], key_path(path, "weight"));
    r.check(c.weight > 0, n["weight"], key_path(path, "weight"), "> 0", c.weight);
  }
  if (n["min_share"]) {
    c.min_share = r.num(n["min_share"], key_path(path, "min_share"));
    r.check(c.min_share >= 0 && c.min_share <= 1, n["min_share"], key_path(path, "min_share"),
            "in 0..1", c.min_share);
  }
  if (n["max_share"]) {
    c.max_share = r.num(n["max_share"], key_path(path, "max_share"));
    r.check(c.max_share > 0 && c.max_share <= 1, n["max_share"], key_path(path, "max_share"),
            "in (0, 1]", c.max_share);
  }
  if (c.max_share < c.min_share) {
    r.fail(n["max_share"] ? n["max_share"] : n["min_share"], key_path(path, "max_share"),
           "must be >= min_share (" + std::to_string(c.min_share) + ")");
  }
  if (const YAML::Node slo = n["slo"]) {
    const std::string p = key_path(path, "slo");
    r.expect_map(slo, p, {"ttft_ms", "tpot_ms"});
    if (slo["ttft_ms"]) {
      c.ttft_ms = r.num(slo["ttft_ms"], p + ".ttft_ms");
      r.check(c.ttft_ms >= 0, slo["ttft_ms"], p + ".ttft_ms", ">= 0", c.ttft_ms);
    }
    if (slo["tpot_ms"]) {
      c.tpot_ms = r.num(slo["tpot_ms"], p + ".tpot_ms");
      r.check(c.tpot_ms >= 0, slo["tpot_ms"], p + ".tpot_ms", ">= 0", c.tpot_ms);
    }
  }
  if (const YAML::Node lim = n["limits"]) {
    const std::string p = key_path(path, "limits");
    r.expect_map(lim, p, {"max_queue", "max_input_tokens"});
    if (lim["max_queue"]) {
      c.max_queue = r.integer(lim["max_queue"], p + ".max_queue");
      r.check(c.max_queue >= 1, lim["max_queue"], p + ".max_queue", ">= 1", c.max_queue);
    }
    if (lim["max_input_tokens"]) {
      c.max_input_tokens = r.integer(lim["max_input_tokens"], p + ".max_input_tokens");
      r.check(c.max_input_tokens >= 0, lim["max_input_tokens"], p + ".max_input_tokens", ">= 0",
              c.max_input_tokens);
    }
  }
  const YAML::Node steps = n["steps"];
  if (!steps || (steps.IsSequence() && steps.size() == 0))
    r.fail(steps ? steps : n, key_path(path, "steps"), "a pipeline needs at least one step");
  if (!steps.IsSequence()) r.fail(steps, key_path(path, "steps"), "expected a list of steps");
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string sp = index_path(key_path(path, "steps"), i);
    StepConfig s = read_step(r, steps[i], sp);
    for (const auto& prev : c.steps) {
      if (prev.name == s.name)
        r.fail(steps[i]["name"] ? steps[i]["name"] : steps[i], sp + ".name",
               "duplicate step name '" + s.name + "'");
    }
    c.steps.push_back(std::move(s));
  }
  return c;
}

}  // namespace

const ModelConfig* ServeConfig::find_model(std::string_view name) const {
  for (const auto& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const PipelineConfig* ServeConfig::find_pipeline(std::string_view name) const {
  for (const auto& p : pipelines) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

ServeConfig parse_config_text(std::string_view yaml, const std::string& file_name) {
  Reader r(file_name);
  // YAML is UTF-8 text; bytes that are not would reach templates, labels and schemas.
  for (size_t pos = 0; pos < yaml.size();) {
    const auto c = tokenizer::utf8::decode(yaml, pos);
    if (!c.valid) {
      const auto line = 1 + std::count(yaml.begin(), yaml.begin() + static_cast<std::ptrdiff_t>(pos), '\n');
      r.fail_line(static_cast<int>(line), "", "the file is not valid UTF-8 (byte " + std::to_string(pos) + ")");
    }
    pos += c.len;
  }
  YAML::Node loaded;
  try {
    loaded = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    r.fail_line(e.mark.line + 1, "", "invalid YAML: " + e.msg);
  }
  const YAML::Node& root = loaded;
  ServeConfig cfg;
  cfg.file = file_name;
  if (!root.IsMap()) r.fail(root, "", "expected a map with 'models' and 'pipelines'");
  r.expect_map(root, "", {"server", "resources", "models", "pipelines"});
  if (root["server"]) read_server(r, root["server"], cfg.server);
  if (root["resources"]) read_resources(r, root["resources"], cfg.resources);

  const std::filesystem::path base = std::filesystem::path(file_name).parent_path();
  const YAML::Node models = root["models"];
  if (!models) r.fail(root, "models", "at least one model is needed");
  if (!models.IsSequence() || models.size() == 0)
    r.fail(models, "models", "expected a non-empty list of models");
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string p = index_path("models", i);
    ModelConfig m = read_model(r, models[i], p, base);
    if (cfg.find_model(m.name))
      r.fail(models[i]["name"], p + ".name", "duplicate model name '" + m.name + "'");
    cfg.models.push_back(std::move(m));
  }

  if (const YAML::Node pipes = root["pipelines"]) {
    if (!pipes.IsSequence()) r.fail(pipes, "pipelines", "expected a list of pipelines");
    double min_total = 0;
    for (size_t i = 0; i < pipes.size(); ++i) {
      const std::string p = index_path("pipelines", i);
      PipelineConfig pc = read_pipeline(r, pipes[i], p);
      if (cfg.find_pipeline(pc.name))
        r.fail(pipes[i]["name"], p + ".name", "duplicate pipeline name '" + pc.name + "'");
      if (!cfg.find_model(pc.model)) {
        std::string names;
        for (const auto& m : cfg.models) names += (names.empty() ? "" : ", ") + m.name;
        r.fail(pipes[i]["model"], p + ".model",
               "unknown model '" + pc.model + "' (models: " + names + ")");
      }
      min_total += pc.min_share;
      if (min_total > 1.0 + 1e-9) {
        r.fail(pipes[i]["min_share"], p + ".min_share",
               "the min_share of all pipelines adds up to " + std::to_string(min_total) +
                   " (must be <= 1)");
      }
      cfg.pipelines.push_back(std::move(pc));
    }
  }
  return cfg;
}

ServeConfig parse_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string() + ": cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  ServeConfig cfg = parse_config_text(ss.str(), file.string());
  cfg.file = file;
  return cfg;
}

}  // namespace tandem::pipeline
