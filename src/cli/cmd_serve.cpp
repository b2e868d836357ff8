// tandem serve: OpenAI-compatible HTTP server over one or more models.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <optional>
#include <set>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/log.h"
#include "base/thread_pool.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "pipeline/config.h"
#include "runtime/placement.h"
#include "server/server.h"

namespace tandem::cli {
namespace {

struct ServeArgs {
  std::string config;
  std::string share_mode;
  std::vector<std::string> models;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int threads = 0;
  int64_t max_batch_tokens = 256;
  int64_t max_running = 64;
  int64_t kv_blocks = 0;
  int64_t max_queue = 256;
  int64_t max_context = 0;
  double drain_timeout = 20;
  size_t max_body = 8u << 20;
  int read_timeout = 10;
  bool no_prefix_cache = false;
  std::set<std::string> given;  // flags given on the command line
};

int serve(const ServeArgs& a) {
  // SIGTERM/SIGINT go to one waiting thread only: block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  // A client that closed its socket must be a failed write, not the end of the process.
  signal(SIGPIPE, SIG_IGN);

  std::optional<pipeline::ServeConfig> cfg;
  if (!a.config.empty()) cfg = pipeline::parse_config(a.config);
  // Command-line flags given explicitly win over the config file.
  auto given = [&](const char* flag) { return a.given.count(flag) > 0; };
  const int threads = cfg && !given("--threads") ? cfg->resources.threads : a.threads;
  ThreadPool pool(threads);
  server::ServerOptions so;
  so.host = cfg && !given("--host") ? cfg->server.host : a.host;
  so.port = cfg && !given("--port") ? cfg->server.port : a.port;
  so.api_key = cfg && !given("--api-key") ? cfg->server.api_key : a.api_key;
  if (cfg) {
    so.manager.mode = cfg->resources.mode == pipeline::ShareMode::kStatic ? runtime::ShareMode::kStatic
                                                                          : runtime::ShareMode::kAdaptive;
    so.manager.control_period_s = cfg->resources.control_period_ms / 1e3;
    so.manager.window_s = cfg->resources.window_s;
  }
  if (!a.share_mode.empty()) {
    so.manager.mode = a.share_mode == "static" ? runtime::ShareMode::kStatic : runtime::ShareMode::kAdaptive;
  }
  so.drain_timeout_s = a.drain_timeout;
  so.max_body_bytes = a.max_body;
  so.read_timeout_s = a.read_timeout;
  server::Server srv(so, pool);
  engine::EngineOptions eo;
  eo.scheduler.max_batch_tokens =
      cfg && !given("--max-batch-tokens") ? cfg->resources.max_batch_tokens : a.max_batch_tokens;
  eo.scheduler.max_running = cfg && !given("--max-running") ? cfg->resources.max_running : a.max_running;
  eo.scheduler.kv_blocks = cfg && !given("--kv-blocks") ? cfg->resources.kv_blocks : a.kv_blocks;
  eo.scheduler.max_context = a.max_context;
  eo.scheduler.prefix_caching = !a.no_prefix_cache;
  eo.max_waiting = a.max_queue;
  for (const auto& spec : a.models) {
    server::ModelSpec ms;
    const auto eq = spec.find('=');
    if (eq != std::string::npos && eq > 0) {
      ms.name = spec.substr(0, eq);
      ms.path = spec.substr(eq + 1);
    } else {
      ms.path = spec;
      ms.name = ms.path.filename().string();
      if (ms.name.empty()) ms.name = ms.path.parent_path().filename().string();
    }
    srv.add_model(ms, eo);
    log::info("serve: loaded model '" + ms.name + "' from " + ms.path.string());
  }
  if (cfg) {
    // Honest about the GPU: the CUDA kernels may be built and a device present, but
    // Model::forward has no GPU path yet, so nothing is placed there. Every model is
    // checked before any is loaded, and the CUDA runtime is only touched when a model
    // asks for more than the CPU.
    std::optional<runtime::GpuProbe> gpu;
    for (const auto& mc : cfg->models) {
      const runtime::PlacementMode mode = mc.placement == pipeline::Placement::kGpu    ? runtime::PlacementMode::kGpu
                                          : mc.placement == pipeline::Placement::kAuto ? runtime::PlacementMode::kAuto
                                          : mc.placement == pipeline::Placement::kLayers
                                              ? runtime::PlacementMode::kLayers
                                              : runtime::PlacementMode::kCpu;
      if (mode == runtime::PlacementMode::kCpu) continue;
      if (!gpu) gpu = runtime::probe_gpu();
      const runtime::StartupPlacement sp =
          runtime::resolve_startup_placement(mode, mc.gpu_layers, *gpu, a.config + ": model '" + mc.name + "'");
      if (!sp.warning.empty()) log::warn(sp.warning);
    }
    for (const auto& mc : cfg->models) {
      server::ModelSpec ms;
      ms.name = mc.name;
      ms.path = mc.path;
      apply_quantize_flag(mc.quantize, ms.load);
      ms.load.bf16_activations = mc.bf16_activations;
      engine::EngineOptions meo = eo;
      if (mc.max_context > 0) meo.scheduler.max_context = mc.max_context;
      srv.add_model(ms, meo);
      log::info("serve: loaded model '" + ms.name + "' from " + ms.path.string() +
                (mc.placement == pipeline::Placement::kAuto ? " (placement auto: cpu)" : ""));
    }
    for (const auto& pc : cfg->pipelines) {
      srv.add_pipeline(pc);
      log::info("serve: pipeline '" + pc.name + "' on model '" + pc.model + "'");
    }
  }
  if (!cfg && a.models.empty()) throw Error("serve: give --config FILE or at least one --model");
  const int port = srv.bind();
  std::fprintf(stderr, "tandem serve: listening on http://%s:%d\n", a.host.c_str(), port);
  std::fflush(stderr);

  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    signalled = true;
    std::fprintf(stderr, "tandem serve: signal %d, draining\n", sig);
    srv.shutdown();
  });
  srv.run();
  // Normally run() returns because the waiter's shutdown() stopped it; if the
  // listener failed on its own, wake the waiter so it can finish.
  if (!signalled) pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  std::fprintf(stderr, "tandem serve: stopped\n");
  return 0;
}

}  // namespace

Runner add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API");
  c->add_option("--config,-c", a->config,
                "A tandem.yaml with models, pipelines and resources (see examples/tandem.yaml)");
  c->add_option("--share-mode", a->share_mode,
                "How pipelines share the machine: adaptive (default) or static (equal fixed partitions)")
      ->check(CLI::IsMember({"adaptive", "static"}));
  c->add_option("--model,-m", a->models,
                "[NAME=]PATH of a model (repeatable); NAME defaults to the folder name");
  c->add_option("--host", a->host, "Address to listen on");
  c->add_option("--port,-p", a->port, "Port (0: any free port, printed on stderr)");
  c->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY'");
  c->add_option("--threads,-t", a->threads, "Compute threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--max-batch-tokens", a->max_batch_tokens,
                "Tokens per forward step (prefill chunk budget)")
      ->check(CLI::PositiveNumber);
  c->add_option("--max-running", a->max_running, "Sequences per batch")->check(CLI::PositiveNumber);
  c->add_option("--kv-blocks", a->kv_blocks,
                "KV cache blocks of 16 tokens per model (0: 8 full contexts)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--max-queue", a->max_queue, "Queued requests per model before 429")
      ->check(CLI::PositiveNumber);
  c->add_option("--max-context", a->max_context, "Cap the context length (0: the model's)")
      ->check(CLI::NonNegativeNumber);
  c->add_option("--drain-timeout", a->drain_timeout,
                "Seconds in-flight requests get after SIGTERM");
  c->add_option("--max-body-bytes", a->max_body, "Largest request body");
  c->add_option("--read-timeout", a->read_timeout, "Seconds a client may stall while sending");
  c->add_flag("--no-prefix-cache", a->no_prefix_cache,
              "Do not reuse KV blocks of shared prompt prefixes");
  return [a, c] {
    for (const char* f : {"--threads", "--host", "--port", "--api-key", "--max-batch-tokens",
                          "--max-running", "--kv-blocks"}) {
      if (c->count(f) > 0) a->given.insert(f);
    }
    return serve(*a);
  };
}

}  // namespace tandem::cli
