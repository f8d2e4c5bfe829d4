// The breaker's states: opening on the failure rate once min_requests completed, refusing while
// open, exactly half_open_requests probes, closing on their success and reopening on a failure.
#include "upstream/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace portico::upstream {
namespace {

using Admission = CircuitBreakerState::Admission;
using State = CircuitBreakerState::State;

config::CircuitBreaker settings() {
  config::CircuitBreaker s;
  s.failure_rate = 0.5;
  s.window = config::Duration(10'000);
  s.min_requests = 4;
  s.open_for = config::Duration(1'000);
  s.half_open_requests = 2;
  return s;
}

void complete(CircuitBreakerState& breaker, bool failed, uint64_t now) {
  ASSERT_EQ(breaker.admit(settings(), now), Admission::Passed);
  breaker.record(settings(), failed, false, now);
}

TEST(CircuitBreaker, StaysClosedBelowMinRequestsWhateverTheRate) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 3; ++i) complete(breaker, true, 1000);
  EXPECT_EQ(breaker.state(), State::Closed);
  EXPECT_EQ(breaker.window(1000).failures, 3u);
}

TEST(CircuitBreaker, OpensAtTheFailureRateAndRefusesUntilOpenForPassed) {
  CircuitBreakerState breaker;
  complete(breaker, false, 1000);
  complete(breaker, false, 1000);
  complete(breaker, true, 1000);
  EXPECT_EQ(breaker.state(), State::Closed);  // 1 of 3: below min_requests anyway
  complete(breaker, true, 1000);              // 2 of 4 = 0.5
  EXPECT_EQ(breaker.state(), State::Open);
  EXPECT_EQ(breaker.opened(), 1u);
  EXPECT_EQ(breaker.admit(settings(), 1001), Admission::Refused);
  EXPECT_EQ(breaker.admit(settings(), 1999), Admission::Refused);
}

TEST(CircuitBreaker, HalfOpenLetsExactlyTheProbesThroughAndClosesOnTheirSuccess) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 4; ++i) complete(breaker, true, 1000);
  ASSERT_EQ(breaker.state(), State::Open);
  EXPECT_EQ(breaker.admit(settings(), 2000), Admission::Probe);
  EXPECT_EQ(breaker.state(), State::HalfOpen);
  EXPECT_EQ(breaker.admit(settings(), 2000), Admission::Probe);
  EXPECT_EQ(breaker.admit(settings(), 2001), Admission::Refused);
  breaker.record(settings(), false, true, 2002);
  EXPECT_EQ(breaker.state(), State::HalfOpen);
  breaker.record(settings(), false, true, 2003);
  EXPECT_EQ(breaker.state(), State::Closed);
  // Closed with an empty window: the failures before do not count again.
  EXPECT_EQ(breaker.window(2004).requests, 0u);
  EXPECT_EQ(breaker.admit(settings(), 2004), Admission::Passed);
}

TEST(CircuitBreaker, AFailedProbeReopensForAnotherOpenFor) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 4; ++i) complete(breaker, true, 1000);
  ASSERT_EQ(breaker.admit(settings(), 2000), Admission::Probe);
  breaker.record(settings(), true, true, 2100);
  EXPECT_EQ(breaker.state(), State::Open);
  EXPECT_EQ(breaker.opened(), 2u);
  EXPECT_EQ(breaker.admit(settings(), 3099), Admission::Refused);
  EXPECT_EQ(breaker.admit(settings(), 3100), Admission::Probe);
}

TEST(CircuitBreaker, AnAbandonedProbeMakesRoomForAnother) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 4; ++i) complete(breaker, true, 1000);
  ASSERT_EQ(breaker.admit(settings(), 2000), Admission::Probe);
  ASSERT_EQ(breaker.admit(settings(), 2000), Admission::Probe);
  ASSERT_EQ(breaker.admit(settings(), 2000), Admission::Refused);
  breaker.abandonProbe();
  EXPECT_EQ(breaker.admit(settings(), 2000), Admission::Probe);
}

TEST(CircuitBreaker, OutcomesOfRequestsAdmittedBeforeItOpenedAreIgnored) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 4; ++i) complete(breaker, true, 1000);
  ASSERT_EQ(breaker.state(), State::Open);
  breaker.record(settings(), false, false, 1001);  // a late success while open
  EXPECT_EQ(breaker.state(), State::Open);
}

TEST(CircuitBreaker, FailuresOutsideTheWindowDoNotCount) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 3; ++i) complete(breaker, true, 1000);
  // 10 s later the three failures have left the window: one more is 1 of 1, below min_requests.
  complete(breaker, true, 12'000);
  EXPECT_EQ(breaker.state(), State::Closed);
  EXPECT_EQ(breaker.window(12'000).failures, 1u);
}

TEST(CircuitBreaker, ManyThreadsNeverLetMoreThanTheProbesThrough) {
  CircuitBreakerState breaker;
  for (int i = 0; i < 4; ++i) complete(breaker, true, 1000);
  std::atomic<int> probes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (breaker.admit(settings(), 5000) == Admission::Probe) probes.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(probes.load(), 2);
}

}  // namespace
}  // namespace portico::upstream
