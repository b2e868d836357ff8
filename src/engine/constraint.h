// Constrained decoding: a per-request object that says which tokens may come
// next. The engine thread calls it for the request's sampled tokens only, in
// order, so an implementation needs no locking. Used by the pipeline steps
// `classify` (a choice among labels) and `extract` (JSON that validates against
// a schema); the engine knows nothing about either.
#pragma once

#include <cstdint>
#include <span>

namespace tandem::engine {

class Constraint {
 public:
  virtual ~Constraint() = default;
  // Sets the logits of every token that may not come next to -infinity. At
  // least one token must stay allowed unless complete() is true.
  virtual void mask(std::span<float> logits) = 0;
  // The sampled token (always one that mask() allowed).
  virtual void accept(int32_t token) = 0;
  // The output is whole: the engine finishes the request (reason "stop")
  // without sampling more.
  virtual bool complete() const = 0;
};

}  // namespace tandem::engine
