#include "core/arena.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace portico {
namespace {

struct Tracked {
  Tracked(std::vector<int>& log, int id) : log_(log), id_(id) {}
  ~Tracked() { log_.push_back(id_); }
  std::vector<int>& log_;
  int id_;
  std::string text = std::string(100, 'x');  // owns heap memory: must be destroyed
};

TEST(Arena, DestroysObjectsNewestFirstOnReset) {
  std::vector<int> log;
  Arena arena(256);
  arena.make<Tracked>(log, 1);
  arena.make<Tracked>(log, 2);
  EXPECT_EQ(arena.make<int>(7), 7);
  arena.reset();
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
  arena.make<Tracked>(log, 3);
}  // and on destruction

TEST(Arena, GrowsPastTheFirstBlockAndKeepsOnlyThatOne) {
  std::vector<int> log;
  Arena arena(128);
  for (int i = 0; i < 20; ++i) arena.make<Tracked>(log, i);
  EXPECT_GT(arena.blockCount(), 1u);
  arena.reset();
  EXPECT_EQ(log.size(), 20u);
  EXPECT_EQ(arena.blockCount(), 1u);
}

TEST(Arena, AlignsEachObject) {
  Arena arena(256);
  arena.make<char>('a');
  auto& d = arena.make<double>(1.5);
  arena.make<char>('b');
  auto& l = arena.make<long long>(3);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(&d) % alignof(double), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(&l) % alignof(long long), 0u);
  EXPECT_EQ(d, 1.5);
  EXPECT_EQ(l, 3);
}

}  // namespace
}  // namespace portico
