// A program that breaks an invariant on purpose (frame-size-matches: a frame freed with another
// size than it was allocated with). Built without NDEBUG, it must abort with the invariant's name;
// the test registered for it expects the failure (test/meson.build, should_fail).
#include <corio/corio.hpp>

int main() {
  void* frame = corio::detail::frame_allocate(64);
  corio::detail::frame_deallocate(frame, 1024);  // CORIO_ASSERT aborts here
  return 0;  // reached only if the check is off: the test then fails
}
