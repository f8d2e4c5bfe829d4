#pragma once
// Buffers of idle connections go back to a pool of the thread that uses them, so that a
// keep-alive connection waiting for its next request holds no buffer at all (review M4; an idle
// HTTP/1.1 connection costs its session object and nothing more). Per thread: workers never
// share it, and no lock is taken.

#include <cstddef>

#include "core/buffer.hpp"

namespace portico {

// A buffer of at least `capacity` bytes, empty: from the pool when one fits, else new.
Buffer takeBuffer(size_t capacity);
// Gives `buffer`'s allocation back (it is left empty, with no allocation). Kept for reuse only
// while the pool is small and the buffer is of an ordinary size: after a spike, memory goes
// back to the allocator instead of staying at the peak.
void giveBuffer(Buffer& buffer);

}  // namespace portico
