// The searching strategies: balanced (a min-max split by dynamic programming), balanced_low_0,
// and sequential (greedy filling). All respect every worker's budget.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/placement_internal.h"

namespace lp::placement {
namespace {

constexpr uint64_t kInf = UINT64_MAX;

struct Failure {
  int worker;
  int64_t begin, end;  // what it would have had to hold
};

// Fills workers d0.. in order from layer l0, each with as many layers as its budget holds while
// leaving every later worker its minimum; the last takes the rest. Taking as much as fits never
// hurts a later worker, so this finds a split within the budgets whenever one exists.
std::optional<Failure> GreedyFill(const Context& ctx, int d0, int64_t l0, Cuts* cuts) {
  const int n_workers = ctx.num_workers();
  const int64_t n_layers = ctx.num_layers();
  cuts->assign(size_t(n_workers) + 1, 0);
  (*cuts)[d0] = l0;
  int64_t cur = l0;
  for (int d = d0; d < n_workers; ++d) {
    int64_t later = 0;
    for (int j = d + 1; j < n_workers; ++j) later += ctx.MinLayers(j);
    const int64_t lo = cur + ctx.MinLayers(d);
    const int64_t hi = ctx.last(d) ? n_layers : n_layers - later;
    if (lo > hi) return Failure{d, cur, lo};
    int64_t n = hi;
    while (n >= lo && !ctx.Fits(d, cur, n)) --n;
    if (n < lo || (ctx.last(d) && n != n_layers)) return Failure{d, cur, ctx.last(d) ? hi : lo};
    (*cuts)[d + 1] = n;
    cur = n;
  }
  return std::nullopt;
}

absl::Status NoFit(const Context& ctx, const Failure& f) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the model does not fit the budgets: filling the workers in order, ",
      WorkerLabel(ctx, f.worker), " would hold ", StageContents(ctx, f.worker, f.begin, f.end),
      " and ", NeedVersusBudget(ctx, f.worker, f.begin, f.end),
      ". Lower limits.max_context or limits.max_step_tokens, raise max_memory, or add workers"));
}

// Splits layers [l0, N) over workers d0.. so that the slowest stage is as fast as possible, and
// among such splits the one with the most even stages (least sum of squared times). Requires a
// feasible split to exist (GreedyFill succeeded).
Cuts BalanceFrom(const Context& ctx, int d0, int64_t l0) {
  const int n_workers = ctx.num_workers();
  const int64_t n_layers = ctx.num_layers();
  const size_t width = size_t(n_layers) + 1;
  // Calls visit(d, k, n) for every stage of worker d, layers [k, n), that is within d's budget
  // and follows a split of [l0, k) over the workers before it that reachable(d - 1, k) accepts.
  auto for_each_stage = [&](int d, auto&& reachable, auto&& visit) {
    for (int64_t n = l0; n <= n_layers; ++n) {
      if (ctx.last(d) && n != n_layers) continue;
      for (int64_t k = n - ctx.MinLayers(d); k >= l0; --k) {
        if (!ctx.Fits(d, k, n)) break;  // a longer stage needs more memory still
        if (d == d0 ? k == l0 : reachable(d - 1, k)) visit(d, k, n);
      }
    }
  };
  // Phase 1: the least possible time of the slowest stage.
  std::vector<std::vector<uint64_t>> slowest(size_t(n_workers), std::vector<uint64_t>(width, kInf));
  for (int d = d0; d < n_workers; ++d) {
    for_each_stage(
        d, [&](int p, int64_t k) { return slowest[p][k] != kInf; },
        [&](int s, int64_t k, int64_t n) {
          const uint64_t prev = s == d0 ? 0 : slowest[s - 1][k];
          slowest[s][n] = std::min(slowest[s][n], std::max(prev, ctx.Time(s, k, n)));
        });
  }
  const uint64_t limit = slowest[n_workers - 1][n_layers];
  // Phase 2: under that limit, the most even split.
  constexpr double kNone = -1;
  std::vector<std::vector<double>> squares(size_t(n_workers), std::vector<double>(width, kNone));
  std::vector<std::vector<int64_t>> from(size_t(n_workers), std::vector<int64_t>(width, -1));
  for (int d = d0; d < n_workers; ++d) {
    for_each_stage(
        d, [&](int p, int64_t k) { return squares[p][k] != kNone; },
        [&](int s, int64_t k, int64_t n) {
          if (ctx.Time(s, k, n) > limit) return;
          const double t = double(ctx.Time(s, k, n));
          const double v = (s == d0 ? 0 : squares[s - 1][k]) + t * t;
          if (squares[s][n] == kNone || v < squares[s][n]) {
            squares[s][n] = v;
            from[s][n] = k;
          }
        });
  }
  Cuts cuts(size_t(n_workers) + 1, 0);
  cuts[n_workers] = n_layers;
  for (int d = n_workers - 1; d >= d0; --d) cuts[d] = from[d][cuts[d + 1]];
  return cuts;
}

}  // namespace

absl::StatusOr<Cuts> BalancedCuts(const Context& ctx) {
  Cuts cuts;
  if (auto failure = GreedyFill(ctx, 0, 0, &cuts)) return NoFit(ctx, *failure);
  return BalanceFrom(ctx, 0, 0);
}

absl::StatusOr<Cuts> BalancedLow0Cuts(const Context& ctx) {
  if (ctx.num_workers() == 1) return BalancedCuts(ctx);
  // The first worker takes the fewest layers that let the others hold the rest.
  std::optional<Failure> failure;
  Cuts cuts;
  for (int64_t k0 = 0; k0 <= ctx.num_layers(); ++k0) {
    if (!ctx.Fits(0, 0, k0)) {
      if (!failure) failure = Failure{0, 0, k0};
      break;
    }
    failure = GreedyFill(ctx, 1, k0, &cuts);
    if (!failure) {
      Cuts rest = BalanceFrom(ctx, 1, k0);
      rest[0] = 0;
      return rest;
    }
  }
  return NoFit(ctx, *failure);
}

absl::StatusOr<Cuts> SequentialCuts(const Context& ctx) {
  Cuts cuts;
  if (auto failure = GreedyFill(ctx, 0, 0, &cuts)) return NoFit(ctx, *failure);
  return cuts;
}

}  // namespace lp::placement
