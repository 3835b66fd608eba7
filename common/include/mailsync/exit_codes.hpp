#pragma once

// Process exit codes shared by every executable (DESIGN.md section 3).
namespace mailsync::exit_code {

inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;
inline constexpr int kUsage = 2;            // bad command line or configuration
inline constexpr int kGateUnavailable = 3;  // DynamoDB gate unreachable / unauthorised / throttled
inline constexpr int kDatabaseUnavailable = 4;  // PostgreSQL unreachable or bad database URL
inline constexpr int kRouteBusy = 5;  // run-once: a worker is syncing the route (nothing done)

}  // namespace mailsync::exit_code
