// This build's version (CMakeLists.txt's project version) and the commit it was built from
// (git's, "unknown" outside git, "-modified" with changes not committed).
#pragma once

namespace omniroute::ops {
const char* version();
const char* commit();
}  // namespace omniroute::ops
