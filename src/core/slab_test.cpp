#include "core/slab.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace portico {
namespace {

struct Counted {
  explicit Counted(int& live_in, std::string name_in) : live(live_in), name(std::move(name_in)) {
    ++live;
  }
  ~Counted() { --live; }
  int& live;
  std::string name;
};

TEST(Slab, MakesStableObjectsAndDestroysEachOnce) {
  int live = 0;
  {
    Slab<Counted, 4> slab;
    std::set<Counted*> made;
    for (int i = 0; i < 10; ++i) {
      Counted* c = slab.make(live, "object number " + std::to_string(i));
      EXPECT_TRUE(made.insert(c).second);
    }
    EXPECT_EQ(live, 10);
    EXPECT_EQ(slab.size(), 10u);
    int i = 0;
    for (Counted* c : made) EXPECT_EQ(c->name.rfind("object number ", 0), 0u) << i++;
  }
  EXPECT_EQ(live, 0);
}

}  // namespace
}  // namespace portico
