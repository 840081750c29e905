#include "ops/version.hpp"

#include "omniroute_version.hpp"  // generated: ops/version.cmake

namespace omniroute::ops {
const char* version() { return OMNIROUTE_VERSION; }
const char* commit() { return OMNIROUTE_COMMIT; }
}  // namespace omniroute::ops
