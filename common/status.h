// Error-propagation helpers over absl::Status / absl::StatusOr, used between all modules.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LP_CONCAT_INNER(a, b) a##b
#define LP_CONCAT(a, b) LP_CONCAT_INNER(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    absl::Status lp_status_ = (expr);        \
    if (!lp_status_.ok()) return lp_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, Foo());` unwraps a StatusOr or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  LP_ASSIGN_OR_RETURN_IMPL(LP_CONCAT(lp_statusor_, __LINE__), lhs, expr)
#define LP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
